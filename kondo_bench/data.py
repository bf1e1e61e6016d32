"""MNIST data: find, verify, read and (on request) download the original IDX files.

Nothing here caches to disk: the IDX files are small enough that parsing them on every
run is faster than managing a cache. Every data problem raises DataError whose message
names the fix.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kondo_bench.errors import DataError

# MD5 of each file's *decompressed* IDX content: what every faithful copy of MNIST holds,
# raw or gzip-compressed by anyone. A gzip container's checksum depends on the compressor
# and its settings, so checking it would refuse faithful re-compressions (the shared
# training files are such a copy) while proving nothing more about the data.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
DEFAULT_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SPLIT_SEED = 0  # fixed, independent of any run seed, so every run sees the same split
REPO_ROOT = Path(__file__).resolve().parents[1]  # module-level so tests can repoint it
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FETCH = "run `kondo-bench data mnist` to download it again"


def _contents(path: Path) -> tuple[bytes, bytes]:
    """(the file's bytes, its IDX content): gunzipped when the bytes are gzip, else as they are."""
    try:
        stored = path.read_bytes()
        # gzip magic; extensions lie, bytes don't
        return stored, gzip.decompress(stored) if stored[:2] == b"\x1f\x8b" else stored
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt; delete it and {_FETCH})") from e


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, detected by magic bytes) into a native-endian array."""
    path = Path(path)
    return _parse_idx(path, _contents(path)[1])


def _parse_idx(path: Path, data: bytes) -> np.ndarray:
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic {data[:4].hex()}); delete it and {_FETCH}")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header truncated; delete it and {_FETCH}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: IDX payload is {len(data) - header} bytes but dims {dims} need "
                        f"{expected} (truncated or garbled); delete it and {_FETCH}")
    # astype copies into native byte order, which also makes the array writable (torch wants that)
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def user_data_dir() -> Path:
    """The per-user download folder: $XDG_DATA_HOME/kondo-bench/mnist (default ~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kondo-bench" / "mnist"


def _locate(root: Path, stem: str) -> Path | None:
    """The file for `stem` in root, as stem.gz or raw stem, or None."""
    for p in (root / f"{stem}.gz", root / stem):
        if p.is_file():
            return p
    return None


def _has_test_pair(folder: Path) -> bool:
    return all(_locate(folder, s) for s in TEST)


def check_data_env() -> Path | None:
    """$KONDO_BENCH_DATA, which must name a folder: one that does not exist is an error, never a
    quiet fall-back to other data."""
    value = os.environ.get("KONDO_BENCH_DATA")
    if not value:
        return None
    env = Path(value).expanduser()
    if not env.is_dir():
        raise DataError(f"KONDO_BENCH_DATA={value} is not a folder; point it at the folder holding the MNIST "
                        "files (or their mnist/ subfolder), or unset it to use the default places")
    return env


def search_places() -> list[Path]:
    """Where MNIST is looked for without task.data_root, in order: $KONDO_BENCH_DATA (the folder
    or its mnist/), a shared data folder beside the checkout or the current directory, then the
    per-user folder."""
    places = []
    if os.environ.get("KONDO_BENCH_DATA"):
        env = check_data_env()
        places += [env, env / "mnist"]
    cwd = Path.cwd()
    for shared in (REPO_ROOT.parent / "shared", cwd.parent / "shared", cwd / "shared"):
        places += [shared / "data" / "mnist-full", shared / "data" / "mnist"]
    places.append(user_data_dir())
    return list(dict.fromkeys(places))


def find_mnist_root(configured: str | None) -> Path:
    """The folder to load MNIST from: configured path, $KONDO_BENCH_DATA, shared data, user folder.

    Without a configured path, the first candidate holding all four files wins, else the
    first holding the t10k pair; none -> DataError listing every place looked.
    """
    if configured:
        p = Path(configured).expanduser()
        if not p.is_dir():
            raise DataError(f"MNIST folder {p} (task.data_root) does not exist; point task.data_root "
                            f"at a folder holding the MNIST files, or run `kondo-bench data mnist --root {p}`")
        # accept a data folder that holds an mnist/ subfolder, like KONDO_BENCH_DATA does
        return p / "mnist" if not _has_test_pair(p) and _has_test_pair(p / "mnist") else p
    candidates = search_places()
    # a folder with the full set beats an earlier one with only the t10k pair, so that a
    # download to the user folder is not shadowed by shared test-only data
    for c in [c for c in candidates if all(_locate(c, s) for s in TRAIN)] + candidates:
        if _has_test_pair(c):
            return c
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))  # dedupe, keep order
    raise DataError(f"MNIST files ({TEST[0]}.gz, {TEST[1]}.gz) not found; looked in: {looked}. "
                    f"Run `kondo-bench data mnist` to download them to {user_data_dir()}, "
                    "or set KONDO_BENCH_DATA or task.data_root to a folder that holds them")


@dataclass
class MnistData:
    """MNIST arrays ready to train on: images uint8 [n, 28, 28], labels int64 [n]."""
    train_images: np.ndarray
    train_labels: np.ndarray
    eval_images: np.ndarray
    eval_labels: np.ndarray
    source: str  # "full" (60k train / 10k test) or "test-split" (fallback on the 10k test set)
    root: str
    note: str | None = None  # human-readable notice when source is not "full"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _checks(path: Path, stem: str, md5sums: dict[str, str]) -> list[tuple[str, str, str]]:
    """What to check a file against: (what, expected md5, "stored" or "content").

    Always the canonical MD5 of its decompressed content (for the four MNIST files); and a
    folder's MD5SUMS line for it, which may list the file as stored (e.g. the .gz) or its
    decompressed content (the raw IDX name). A .gz line for a raw file cannot be checked.
    """
    checks = []
    if stem in MNIST_MD5:
        checks.append(("decompressed IDX content (canonical MNIST md5)", MNIST_MD5[stem], "content"))
    if path.name in md5sums:
        checks.append((f"file as stored (md5 listed in {path.parent / 'MD5SUMS'})", md5sums[path.name], "stored"))
    elif stem in md5sums:
        checks.append((f"decompressed IDX content (md5 listed in {path.parent / 'MD5SUMS'})", md5sums[stem], "content"))
    return checks


def read_verified(path: Path, stem: str, md5sums: dict[str, str] | None = None) -> np.ndarray:
    """Read one MNIST file, checking its content (and any MD5SUMS line) before parsing it."""
    stored, content = _contents(path)
    digests = {"stored": lambda: _md5(stored), "content": lambda: _md5(content)}
    for what, expected, kind in _checks(path, stem, md5sums or {}):
        actual = digests[kind]()
        if actual != expected:
            raise DataError(f"{path} fails its checksum: md5 of its {what} is {actual}, expected {expected}; the "
                            f"file is corrupt, truncated or not the official MNIST; delete it and {_FETCH}")
    return _parse_idx(path, content)


def read_md5sums(folder: Path) -> dict[str, str]:
    """A folder's MD5SUMS as {file name: md5} ("*name" is md5sum's binary mode); {} if none."""
    sums = {}
    if (folder / "MD5SUMS").is_file():
        for line in (folder / "MD5SUMS").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _read_pair(root: Path, stems, expected_n: int, md5sums: dict[str, str] | None):
    """One images/labels pair; verified (content and MD5SUMS) unless md5sums is None."""
    verify = md5sums is not None
    if verify:
        images, labels = (read_verified(_locate(root, s), s, md5sums) for s in stems)
    else:
        images, labels = (read_idx(_locate(root, s)) for s in stems)
    ok = images.ndim == 3 and labels.ndim == 1 and len(images) == len(labels)
    if verify:  # the real files have fixed shapes; fake/test data may use any count
        ok = ok and images.shape == (expected_n, 28, 28)
    if not ok:
        raise DataError(f"{root}: {stems[0]} has shape {images.shape} and {stems[1]} {labels.shape}, expected "
                        f"({expected_n}, 28, 28) and ({expected_n},); delete them and {_FETCH}")
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


_CACHE: dict = {}  # one process's loads (a sweep's in-process jobs, tests): key -> MnistData


def load_mnist(root: str | None = None, eval_size: int = 2000, verify: bool = True) -> MnistData:
    """Load MNIST from `root` (or the folder find_mnist_root picks), once per process: a second
    call with the same arguments on unchanged files (same size and mtime) returns the first's
    arrays, which callers must not modify."""
    folder = find_mnist_root(root)
    stats = ((p.name, p.stat()) for p in sorted(folder.iterdir()) if p.is_file())  # find_mnist_root: a folder
    stamp = tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats)
    key = (str(folder.resolve()), eval_size, verify, stamp)
    if key not in _CACHE:
        _CACHE.clear()  # keep one set in memory (about 60 MB), not every folder a process has seen
        _CACHE[key] = _load_mnist(folder, eval_size, verify)
    return _CACHE[key]


def _load_mnist(folder: Path, eval_size: int, verify: bool) -> MnistData:
    """Load MNIST from `folder`.

    With all four files: train on the 60k training set, evaluate on the 10k test set
    (eval_size is ignored). With only the t10k pair: split the 10k test images by a
    fixed permutation (seed 0) into n - eval_size for training and eval_size for eval.
    """
    missing = [s for s in TEST if not _locate(folder, s)]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)} (.gz or raw); run `kondo-bench data mnist "
                        f"--root {folder}` or copy the MNIST files there")
    have_train = [s for s in TRAIN if _locate(folder, s)]
    if len(have_train) == 1:
        other = next(s for s in TRAIN if s not in have_train)
        raise DataError(f"{folder} has {have_train[0]} but not {other}; run `kondo-bench data mnist "
                        f"--root {folder}` or remove {have_train[0]} to use the test-split fallback")
    md5sums = read_md5sums(folder) if verify else None
    test_x, test_y = _read_pair(folder, TEST, 10000, md5sums)
    if have_train:
        train_x, train_y = _read_pair(folder, TRAIN, 60000, md5sums)
        return MnistData(train_x, train_y, test_x, test_y, "full", str(folder))
    n = len(test_x)
    if not 1 <= eval_size <= n - 1:
        raise DataError(f"eval_size={eval_size} must be between 1 and {n - 1} for the {n}-image test split")
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    tr, ev = perm[: n - eval_size], perm[n - eval_size:]
    note = (f"MNIST training files not found in {folder}: learning from {n - eval_size:,} images of the "
            f"{n:,}-image test split and evaluating on the other {eval_size:,} (deterministic split, seed "
            f"{SPLIT_SEED}). Results are not comparable with the paper's 60k-image setting. "
            "Run `kondo-bench data mnist` to get the full set.")
    return MnistData(test_x[tr], test_y[tr], test_x[ev], test_y[ev], "test-split", str(folder), note)


def _content_md5(path: Path) -> str | None:
    """md5 of a file's decompressed content; None when it cannot be read or decompressed."""
    try:
        return _md5(_contents(path)[1])
    except DataError:
        return None
