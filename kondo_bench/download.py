"""Getting the MNIST files onto a machine: `kondo-bench data mnist`.

What the search (kondo_bench.data.find_mnist_root) already finds is verified and used; only
what is missing is fetched, into the per-user folder. A download goes to a hidden `.NAME.part`
file beside its target, resumes from that file's size after a dropped connection (or an
interrupted run), and is renamed to its real name only once its decompressed content has the
canonical MD5: an interrupted or corrupt download never leaves a file that looks finished.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from kondo_bench import data
from kondo_bench.errors import DataError

ATTEMPTS = 4  # connections per file and mirror: the first plus three resumes after a drop
CHUNK = 1 << 16


def download_dir() -> Path:
    """Where downloads go: $KONDO_BENCH_DATA/mnist if set, else the per-user folder."""
    env = os.environ.get("KONDO_BENCH_DATA")
    return Path(env).expanduser() / "mnist" if env else data.user_data_dir()


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr)


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download url into part, continuing from part's size; retries a dropped connection.

    Raises the last network error once ATTEMPTS connections have failed to deliver the rest.
    """
    last: Exception | None = None
    for _ in range(ATTEMPTS):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                if have and resp.status != 206:  # the server ignored the range: start again
                    have = 0
                expected = resp.length  # bytes still to come (None: the server did not say)
                got = 0
                with open(part, "ab" if have else "wb") as out, \
                        tqdm(total=None if expected is None else have + expected, initial=have, unit="B",
                             unit_scale=True, desc=part.name[1:-5], disable=None if progress else True,
                             file=sys.stderr, leave=False) as bar:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
            if expected is None or got >= expected:
                return
            # http.client returns b"" when the peer closes early; a short body is a drop
            last = ConnectionError(f"connection closed after {have + got:,} of {have + expected:,} bytes")
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left past our bytes: start again from zero
                part.unlink()
                last = e
                continue
            raise
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
            last = e
        _say(progress, f"{part.name[1:-5]}: {last}; resuming")
    raise last if last else ConnectionError("no data")


def _install(part: Path, target: Path, stem: str, md5: str) -> str | None:
    """Rename part to target if its content has the expected md5; else delete it and say why."""
    actual = data._content_md5(part)
    if actual == md5:
        os.replace(part, target)  # atomic on one filesystem
        return None
    part.unlink(missing_ok=True)
    return f"md5 of the decompressed content {actual}, expected {md5}"


def download_mnist(dest: str | Path, mirrors: list[str] | None = None, timeout: float = 30.0,
                   files: list[str] | None = None, progress: bool = True,
                   checksums: dict | None = None, sources: list[Path] = ()) -> Path:
    """Make dest hold each MNIST .gz file with verified content; fetch only what it lacks.

    `checksums` maps each file's stem (the raw IDX name) to the md5 of its decompressed content
    (default data.MNIST_MD5), so a mirror that re-compressed the files is accepted and a corrupt
    or foreign file is not. A file already in dest (.gz or raw) with the right content is kept;
    one found verified in a folder of `sources` is copied; the rest come from the first mirror
    that serves them, resumed after dropped connections.
    """
    dest, sums = Path(dest).expanduser(), checksums or data.MNIST_MD5
    mirrors = mirrors or data.DEFAULT_MIRRORS
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {dest}: {e}; pass a writable --root") from e
    failed = []
    for name in files or [f"{s}.gz" for s in sums]:
        stem = name.removesuffix(".gz")
        if stem not in sums:
            raise DataError(f"no checksum known for {name}; expected one of {', '.join(f'{s}.gz' for s in sums)}")
        present = data._locate(dest, stem)
        if present and data._content_md5(present) == sums[stem]:
            _say(progress, f"{present.name}: already in {dest}, verified")
            continue
        target, part = dest / (present.name if present else name), dest / f".{name}.part"
        copy = next((p for p in (data._locate(Path(s), stem) for s in sources)
                     if p and p.resolve() != target.resolve() and data._content_md5(p) == sums[stem]), None)
        if copy:  # a verified copy the search found elsewhere: no download needed
            target = dest / copy.name
            shutil.copyfile(copy, part)
            if _install(part, target, stem, sums[stem]) is None:
                _say(progress, f"{copy.name}: copied from {copy.parent}, verified")
                continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            _say(progress, f"{name}: downloading {url}")
            try:
                resumed = part.exists()
                _fetch(url, part, timeout, progress)
                why = _install(part, dest / name, stem, sums[stem])
                if why and resumed:  # the old part may hold another mirror's compression: once afresh
                    _fetch(url, part, timeout, progress)
                    why = _install(part, dest / name, stem, sums[stem])
                if why is None:
                    if present and present.name != name:
                        present.unlink()  # a bad raw copy beside the good .gz would be read first
                    break
                errors.append(f"{url}: {why}")
            except (OSError, ValueError, http.client.HTTPException) as e:
                errors.append(f"{url}: {e}")
        else:  # go on with the other files, so that a rerun has only the failed ones left to fetch
            part.unlink(missing_ok=True)
            failed.append(f"could not download {name}; tried {'; '.join(errors)}. Download it by hand "
                          f"from any MNIST mirror and place it in {dest}/ (its decompressed content's md5 is "
                          f"{sums[stem]}), or pass --mirror URL")
    if failed:
        raise DataError(" -- ".join(failed))
    return dest


def ensure_mnist(mirrors: list[str] | None = None, timeout: float = 30.0, progress: bool = True) -> Path:
    """The folder runs will load MNIST from, with all four files verified.

    A search place that already holds all four verified files is used as it is (nothing is
    downloaded); otherwise the download folder gets the missing files, copied from verified
    copies the search finds (such as a test pair alone) or downloaded.
    """
    dest, places = download_dir(), data.search_places()
    full = next((p for p in places if all(data._locate(p, s) for s in data.MNIST_MD5)), None)
    if full is not None:
        bad = [s for s in data.MNIST_MD5 if data._content_md5(data._locate(full, s)) != data.MNIST_MD5[s]]
        if not bad:
            _say(progress, f"MNIST found in {full}: all four files verified, nothing to download")
            return full
        if full.resolve() != dest.resolve():  # the download folder repairs itself below; others we name
                raise DataError(f"{full} holds MNIST files that fail their checksum ({', '.join(bad)}); delete them "
                            "and run `kondo-bench data mnist` again, or point KONDO_BENCH_DATA elsewhere")
    return download_mnist(dest, mirrors, timeout, progress=progress, sources=places)


def data_main(argv: list[str]) -> int:
    """`kondo-bench data mnist [--root DIR] [--mirror URL]... [--timeout S] [--verify-only]`."""
    parser = argparse.ArgumentParser(prog="kondo-bench data", description="Download or check datasets.")
    parser.add_argument("dataset", choices=["mnist"])
    parser.add_argument("--root", help="download into this folder (default: use the files the search finds; "
                        f"fetch what is missing into $KONDO_BENCH_DATA/mnist or {data.user_data_dir()})")
    parser.add_argument("--mirror", action="append", help="base URL to try before giving up (repeatable; "
                        "replaces the default mirrors)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per connection (default 30)")
    parser.add_argument("--verify-only", action="store_true", help="check the files, download nothing")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help or bad usage; hand the code back instead
        return int(e.code or 0)
    try:
        if args.verify_only:
            root = args.root
        elif args.root:
            root = str(download_mnist(args.root, args.mirror, args.timeout))
        else:
            root = str(ensure_mnist(args.mirror, args.timeout))
        d = data.load_mnist(root)
    except DataError as e:
        print(f"kondo-bench: error: {e}", file=sys.stderr)
        return 1
    print(f"MNIST ok in {d.root}: source {d.source}, {len(d.train_images):,} train / "
          f"{len(d.eval_images):,} eval images")
    if d.note:
        print(d.note)
    if not args.verify_only:
        try:  # a custom --root is only found later if the usual search leads there
            found = data.find_mnist_root(None).resolve() == Path(d.root).resolve()
        except DataError:
            found = False
        print("Next: run the MNIST task; it finds these files automatically." if found else
              f"Next: run the MNIST task with task.data_root={d.root} (or set KONDO_BENCH_DATA={d.root}).")
    return 0
