"""Tests for kondo_bench.data: IDX reading, MNIST discovery/loading/verification, download, CLI."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from kondo_bench import data, download
from kondo_bench.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # the test pair only
SHARED_FULL = SHARED.parent / "mnist-full"  # all four files; the training pair re-compressed
TEST_STEMS = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array as IDX (big-endian), the way the MNIST files are written."""
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
            np.float32: 0x0D, np.float64: 0x0E}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def make_pair(folder: Path, stems, n: int, gz: bool = True, seed: int = 0) -> None:
    """Write a fake images/labels pair: n random 28x28 uint8 images, labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"{stems[0]}{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz)
    write_idx(folder / f"{stems[1]}{ext}", rng.integers(0, 10, n, dtype=np.uint8), gz)


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """Point every default search place at empty tmp folders."""
    monkeypatch.delenv("KONDO_BENCH_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo" / "kondo-bench")
    return tmp_path


# ---- read_idx ----

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    rng = np.random.default_rng(1)
    images = (rng.standard_normal((5, 28, 28)) * 50).astype(dtype)
    labels = rng.integers(0, 10, 5).astype(dtype)
    # names without .gz even when gzipped: detection is by magic bytes, not extension
    got_x = data.read_idx(write_idx(tmp_path / "x.idx", images, gz))
    got_y = data.read_idx(write_idx(tmp_path / "y.idx", labels, gz))
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)
    assert got_x.shape == (5, 28, 28) and got_y.shape == (5,)
    assert got_x.dtype.isnative and got_x.flags.writeable


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_truncated(tmp_path, gz):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    p = tmp_path / "t.idx"
    p.write_bytes(gzip.compress(raw[:-10]) if gz else raw[:-10])
    with pytest.raises(DataError, match="t.idx"):
        data.read_idx(p)
    if gz:  # a cut-off gzip stream, too
        p.write_bytes(gzip.compress(raw)[:-20])
        with pytest.raises(DataError, match="t.idx"):
            data.read_idx(p)


def test_read_idx_bad_magic(tmp_path):
    p = tmp_path / "bad.idx"
    p.write_bytes(b"\x01\x02\x08\x01" + b"\0" * 20)
    with pytest.raises(DataError, match="bad.idx"):
        data.read_idx(p)
    p.write_bytes(b"\0\0\x07\x01\0\0\0\x01x")  # unknown dtype code
    with pytest.raises(DataError, match="bad.idx"):
        data.read_idx(p)


# ---- load_mnist on generated data ----

@pytest.mark.parametrize("gz", [True, False])
def test_load_full_layout(tmp_path, gz):
    make_pair(tmp_path, TRAIN_STEMS, 50, gz, seed=1)
    make_pair(tmp_path, TEST_STEMS, 20, gz, seed=2)
    d = data.load_mnist(str(tmp_path), verify=False)
    assert d.source == "full" and d.note is None and d.root == str(tmp_path)
    assert d.train_images.shape == (50, 28, 28) and d.eval_images.shape == (20, 28, 28)
    assert d.train_images.dtype == np.uint8 and d.train_labels.shape == (50,)


def test_load_test_split(tmp_path):
    make_pair(tmp_path, TEST_STEMS, 10000)
    a = data.load_mnist(str(tmp_path), verify=False)
    b = data.load_mnist(str(tmp_path), verify=False)
    assert a.source == "test-split" and "test split" in a.note and "kondo-bench data mnist" in a.note
    assert len(a.train_images) == 8000 and len(a.eval_images) == 2000
    assert len(a.train_labels) == 8000 and len(a.eval_labels) == 2000
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.eval_labels, b.eval_labels)
    # disjoint: the split is a permutation of the 10k indices
    perm = np.random.default_rng(0).permutation(10000)
    full = data.read_idx(tmp_path / f"{TEST_STEMS[0]}.gz")
    np.testing.assert_array_equal(a.eval_images, full[perm[8000:]])
    assert set(perm[:8000]).isdisjoint(perm[8000:])
    assert len(data.load_mnist(str(tmp_path), eval_size=500, verify=False).eval_images) == 500


def test_load_bad_layouts(tmp_path):
    make_pair(tmp_path, TEST_STEMS, 30)
    for bad in (0, 30, -1):
        with pytest.raises(DataError, match="eval_size"):
            data.load_mnist(str(tmp_path), eval_size=bad, verify=False)
    make_pair(tmp_path, TRAIN_STEMS, 40)
    (tmp_path / f"{TRAIN_STEMS[1]}.gz").unlink()  # half a training pair
    with pytest.raises(DataError, match=TRAIN_STEMS[1]):
        data.load_mnist(str(tmp_path), verify=False)
    # verify=True checks the content: foreign files of the right shape are refused, raw or .gz
    for gz in (False, True):
        foreign = tmp_path / f"foreign{gz}"
        make_pair(foreign, TEST_STEMS, 10000, gz=gz)
        with pytest.raises(DataError, match="md5 of its decompressed IDX content") as e:
            data.load_mnist(str(foreign))
        assert "\n" not in str(e.value) and "kondo-bench data mnist" in str(e.value)


# ---- the real shared test split ----

@pytest.fixture
def shared():
    if not all((SHARED / f"{s}.gz").is_file() for s in TEST_STEMS):
        pytest.skip(f"no MNIST test split at {SHARED}")
    return SHARED


def test_real_shared_data(shared):
    d = data.load_mnist(str(shared))  # verify=True: md5 against MNIST_FILES and MD5SUMS
    assert d.source == "test-split"
    assert d.train_images.shape == (8000, 28, 28) and d.eval_images.shape == (2000, 28, 28)
    assert d.train_images.dtype == np.uint8
    for y in (d.train_labels, d.eval_labels):
        assert y.min() >= 0 and y.max() <= 9
    counts = np.bincount(np.concatenate([d.train_labels, d.eval_labels]), minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_data_corrupt_copy(shared, tmp_path):
    for s in TEST_STEMS:
        shutil.copy(shared / f"{s}.gz", tmp_path)
    p = tmp_path / f"{TEST_STEMS[0]}.gz"
    good = p.read_bytes()
    b = bytearray(good)
    b[len(b) // 2] ^= 0xFF  # the gzip stream's CRC catches this
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match=r"(corrupt|md5).*delete it") as e:
        data.load_mnist(str(tmp_path))
    assert TEST_STEMS[0] in str(e.value)
    # a well-formed gzip of altered content (one pixel): only the content md5 can catch it
    content = bytearray(gzip.decompress(good))
    content[-1] ^= 0x01
    p.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match=r"md5 of its decompressed IDX content") as e:
        data.load_mnist(str(tmp_path))
    assert data.MNIST_MD5[TEST_STEMS[0]] in str(e.value)
    p.write_bytes(good[: len(good) // 3])  # truncated
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.load_mnist(str(tmp_path))


def test_recompressed_and_raw_copies_are_accepted(shared, tmp_path):
    """Content, not containers: a re-compressed .gz (other gzip bytes) and a raw copy both load."""
    recompressed, raw = tmp_path / "recompressed", tmp_path / "raw"
    for folder in (recompressed, raw):
        folder.mkdir()
    for s in TEST_STEMS:
        content = gzip.decompress((shared / f"{s}.gz").read_bytes())
        (recompressed / f"{s}.gz").write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
        (raw / s).write_bytes(content)
    assert hashlib.md5((recompressed / f"{TEST_STEMS[0]}.gz").read_bytes()).hexdigest() != \
        hashlib.md5((shared / f"{TEST_STEMS[0]}.gz").read_bytes()).hexdigest()  # another container
    reference = data.load_mnist(str(shared))
    for folder in (recompressed, raw):
        d = data.load_mnist(str(folder))
        assert d.source == "test-split"
        np.testing.assert_array_equal(d.train_images, reference.train_images)


def test_md5sums_lines_of_either_kind(shared, tmp_path):
    """A folder's MD5SUMS may list the stored .gz or the raw content; either is checked where it applies."""
    for s in TEST_STEMS:
        shutil.copy(shared / f"{s}.gz", tmp_path)
    gz_md5 = hashlib.md5((tmp_path / f"{TEST_STEMS[1]}.gz").read_bytes()).hexdigest()
    for line in (f"{gz_md5}  {TEST_STEMS[1]}.gz", f"{data.MNIST_MD5[TEST_STEMS[1]]}  *{TEST_STEMS[1]}"):
        (tmp_path / "MD5SUMS").write_text(line + "\n")
        assert data.load_mnist(str(tmp_path)).source == "test-split"
    for line in (f"{'0' * 32}  {TEST_STEMS[1]}.gz", f"{'0' * 32}  {TEST_STEMS[1]}"):
        (tmp_path / "MD5SUMS").write_text(line + "\n")
        with pytest.raises(DataError, match=f"md5.*{'0' * 32}.*MD5SUMS|MD5SUMS.*{'0' * 32}"):
            data.load_mnist(str(tmp_path))
    # a .gz line cannot be checked against a raw file: ignored, the content md5 still is
    (tmp_path / f"{TEST_STEMS[1]}").write_bytes(gzip.decompress((tmp_path / f"{TEST_STEMS[1]}.gz").read_bytes()))
    (tmp_path / f"{TEST_STEMS[1]}.gz").unlink()
    (tmp_path / "MD5SUMS").write_text(f"{'0' * 32}  {TEST_STEMS[1]}.gz\n")
    assert data.load_mnist(str(tmp_path)).source == "test-split"


@pytest.mark.skipif(not (SHARED_FULL / "train-images-idx3-ubyte.gz").is_file(), reason="no ../shared/data/mnist-full")
def test_real_full_set_is_found_and_verified(nowhere, monkeypatch):
    """The shared full set (training files re-compressed) loads with verification, found by default."""
    monkeypatch.setattr(data, "REPO_ROOT", SHARED.parents[2] / "main")  # ../shared beside the clone
    d = data.load_mnist()
    assert d.source == "full" and d.note is None and Path(d.root) == SHARED_FULL
    assert d.train_images.shape == (60000, 28, 28) and d.eval_images.shape == (10000, 28, 28)
    assert np.bincount(d.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert d.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


# ---- find_mnist_root ----

def test_find_configured_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.find_mnist_root(str(tmp_path / "nope"))


def test_find_env_var(nowhere, monkeypatch):
    make_pair(nowhere / "d" / "mnist", TEST_STEMS, 5)
    monkeypatch.setenv("KONDO_BENCH_DATA", str(nowhere / "d"))  # a folder holding mnist/
    assert data.find_mnist_root(None) == nowhere / "d" / "mnist"
    monkeypatch.setenv("KONDO_BENCH_DATA", str(nowhere / "d" / "mnist"))  # the folder itself
    assert data.find_mnist_root(None) == nowhere / "d" / "mnist"


def test_find_shared_full_before_test_only(nowhere):
    make_pair(nowhere / "repo" / "shared" / "data" / "mnist", TEST_STEMS, 5)
    assert data.find_mnist_root(None) == nowhere / "repo" / "shared" / "data" / "mnist"
    full = nowhere / "repo" / "shared" / "data" / "mnist-full"
    make_pair(full, TEST_STEMS, 5)
    make_pair(full, TRAIN_STEMS, 5)
    assert data.find_mnist_root(None) == full


def test_find_prefers_full_set(nowhere):
    make_pair(nowhere / "cwd" / "shared" / "data" / "mnist", TEST_STEMS, 5)
    user = nowhere / "xdg" / "kondo-bench" / "mnist"
    make_pair(user, TEST_STEMS, 5)
    assert data.find_mnist_root(None) == nowhere / "cwd" / "shared" / "data" / "mnist"
    make_pair(user, TRAIN_STEMS, 5)
    assert data.find_mnist_root(None) == user


def test_find_nothing(nowhere):
    with pytest.raises(DataError) as e:
        data.find_mnist_root(None)
    msg = str(e.value)
    assert str(nowhere / "xdg" / "kondo-bench" / "mnist") in msg
    assert str(nowhere / "cwd" / "shared" / "data" / "mnist") in msg
    assert str(nowhere / "repo" / "shared" / "data" / "mnist") in msg
    assert "kondo-bench data mnist" in msg and "KONDO_BENCH_DATA" in msg


# ---- download_mnist against a local server ----

@pytest.fixture
def server(tmp_path):
    """A threaded http.server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def served_files(www: Path) -> dict:
    """Generate small .gz files under the four MNIST names; return stem -> md5 of the content."""
    (www / "m").mkdir()
    make_pair(www / "m", TRAIN_STEMS, 6, seed=3)
    make_pair(www / "m", TEST_STEMS, 4, seed=4)
    return {s: hashlib.md5(gzip.decompress((www / "m" / f"{s}.gz").read_bytes())).hexdigest() for s in data.MNIST_MD5}


def test_download_and_fallthrough(server, tmp_path):
    url, www = server
    sums = served_files(www)
    dest = tmp_path / "dest"
    # the first mirror 404s on every file; the second has them
    got = download.download_mnist(dest, [f"{url}/missing/", f"{url}/m/"], timeout=5, progress=False,
                              checksums=sums)
    assert got == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in sums)  # no temp files left
    assert data.load_mnist(str(dest), verify=False).source == "full"
    # second run: everything already present, nothing fetched (mirror is dead)
    download.download_mnist(dest, [f"{url}/missing/"], timeout=5, progress=False, checksums=sums)


def test_download_wrong_checksum(server, tmp_path):
    url, www = server
    sums = served_files(www)
    name = "t10k-labels-idx1-ubyte.gz"
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="md5"):
        download.download_mnist(dest, [f"{url}/m/"], timeout=5, files=[name], progress=False,
                            checksums={**sums, name.removesuffix(".gz"): "0" * 32})
    assert list(dest.iterdir()) == []  # neither the final file nor a temp file


def test_download_all_mirrors_dead(server, tmp_path):
    url, _ = server
    dead = [f"{url}/nope/", "http://127.0.0.1:1/"]
    with pytest.raises(DataError) as e:
        download.download_mnist(tmp_path / "dest", dead, timeout=2, files=["t10k-labels-idx1-ubyte.gz"],
                            progress=False)
    msg = str(e.value)
    assert all(m.rstrip("/") in msg for m in dead) and "by hand" in msg


# ---- CLI ----

def test_data_main_verify_only(shared, tmp_path, capsys):
    for s in TEST_STEMS:  # the real test pair, stored raw
        (tmp_path / s).write_bytes(gzip.decompress((shared / f"{s}.gz").read_bytes()))
    assert download.data_main(["mnist", "--root", str(tmp_path), "--verify-only"]) == 0
    out = capsys.readouterr().out
    assert "test-split" in out and "8,000" in out


def test_data_main_empty_folder(tmp_path, capsys):
    assert download.data_main(["mnist", "--root", str(tmp_path), "--verify-only"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kondo-bench: error: ") and "kondo-bench data mnist" in err


def test_data_main_download(server, tmp_path, capsys, monkeypatch):
    url, www = server
    (www / "m").mkdir()
    for stems, n in ((TRAIN_STEMS, 60000), (TEST_STEMS, 10000)):  # real counts of zeros: tiny as .gz
        write_idx(www / "m" / f"{stems[0]}.gz", np.zeros((n, 28, 28), np.uint8), gz=True)
        write_idx(www / "m" / f"{stems[1]}.gz", np.zeros(n, np.uint8), gz=True)
    sums = {s: hashlib.md5(gzip.decompress((www / "m" / f"{s}.gz").read_bytes())).hexdigest() for s in data.MNIST_MD5}
    monkeypatch.setattr(data, "MNIST_MD5", sums)  # the CLI has no checksum override
    dest = tmp_path / "dest"
    rc = download.data_main(["mnist", "--root", str(dest), "--mirror", f"{url}/m/", "--timeout", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in sums)
    assert "full" in out and "60,000" in out and f"task.data_root={dest}" in out


def test_load_mnist_is_cached_per_process_until_the_files_change(tmp_path):
    make_pair(tmp_path, TEST_STEMS, 30)
    a = data.load_mnist(str(tmp_path), eval_size=10, verify=False)
    assert data.load_mnist(str(tmp_path), eval_size=10, verify=False) is a  # same arrays, not reread
    assert data.load_mnist(str(tmp_path), eval_size=5, verify=False) is not a  # other arguments
    make_pair(tmp_path, TEST_STEMS, 40, seed=9)  # rewritten files: read again
    b = data.load_mnist(str(tmp_path), eval_size=10, verify=False)
    assert len(b.train_images) + len(b.eval_images) == 40
