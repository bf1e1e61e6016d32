"""`kondo-bench data mnist` end to end, as a fresh machine gets MNIST, with no network: a
mirror on 127.0.0.1 (tests/conftest.py: Mirror) serves the four files, HOME is empty and no
data folder lies beside the checkout or the current directory."""
from __future__ import annotations


import pytest

from kondo_bench import data, download
from kondo_bench.cli import main

NAMES = [f"{s}.gz" for s in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]


def fetched(mirror) -> list[str]:
    return [name for name, _ in mirror.requests]


def test_fresh_machine_downloads_everything_once(fresh_machine, mirror, capsys):
    with pytest.raises(data.DataError, match="kondo-bench data mnist"):
        data.find_mnist_root(None)  # really nothing there
    assert main(["data", "mnist", "--mirror", mirror.url, "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert sorted(fetched(mirror)) == sorted(NAMES)
    assert sorted(p.name for p in fresh_machine.iterdir()) == sorted(NAMES)  # no .part left
    assert "source full, 60,000 train / 10,000 eval images" in out and "finds these files" in out
    assert data.find_mnist_root(None) == fresh_machine
    # a second time: everything is there and verified, nothing is fetched
    mirror.requests.clear()
    assert main(["data", "mnist", "--mirror", mirror.url]) == 0
    assert fetched(mirror) == []


def test_data_the_search_finds_is_used_and_nothing_downloaded(fresh_machine, mirror, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "datasets"
    (elsewhere / "mnist").mkdir(parents=True)
    for name, body in mirror.files.items():
        (elsewhere / "mnist" / name).write_bytes(body)
    monkeypatch.setenv("KONDO_BENCH_DATA", str(elsewhere))
    assert main(["data", "mnist", "--mirror", mirror.url]) == 0
    captured = capsys.readouterr()
    assert fetched(mirror) == []
    assert "nothing to download" in captured.err and f"MNIST ok in {elsewhere / 'mnist'}" in captured.out
    assert not fresh_machine.exists()  # nothing copied to the per-user folder either


def test_a_test_pair_found_elsewhere_is_copied_and_only_the_training_pair_fetched(fresh_machine, mirror):
    shared = fresh_machine.parents[4] / "cwd" / "shared" / "data" / "mnist"  # beside the current directory
    shared.mkdir(parents=True)
    for name in NAMES[2:]:
        (shared / name).write_bytes(mirror.files[name])
    assert data.find_mnist_root(None) == shared  # the search finds the test pair only
    assert download.data_main(["mnist", "--mirror", mirror.url]) == 0
    assert sorted(fetched(mirror)) == sorted(NAMES[:2])
    assert data.find_mnist_root(None) == fresh_machine  # the full set now wins
    assert data.load_mnist().source == "full"


def test_a_corrupt_mirror_is_refused_and_leaves_nothing(fresh_machine, mirror, capsys):
    mirror.corrupt.add(NAMES[1])
    assert main(["data", "mnist", "--mirror", mirror.url]) == 1
    err = capsys.readouterr().err
    assert err.count("kondo-bench: error:") == 1  # one line, after the progress lines
    assert err.splitlines()[-1].startswith("kondo-bench: error: could not download " + NAMES[1])
    assert data.MNIST_MD5[NAMES[1].removesuffix(".gz")] in err
    left = sorted(p.name for p in fresh_machine.iterdir())
    assert NAMES[1] not in left and not [n for n in left if n.endswith(".part")]
    with pytest.raises(data.DataError):  # the set is incomplete, and nothing pretends otherwise
        data.load_mnist()
    # the mirror fixed: the next run fetches the one missing file only
    mirror.corrupt.clear()
    mirror.requests.clear()
    assert main(["data", "mnist", "--mirror", mirror.url]) == 0
    assert fetched(mirror) == [NAMES[1]]


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_a_dropped_connection_is_resumed_or_retried(fresh_machine, mirror, ranges):
    """The first response of each file stops half-way: with Range support the download goes on
    from the bytes it has; from a mirror that ignores Range (200, the whole file) it starts over."""
    mirror.ranges = ranges
    mirror.drop.update(NAMES)
    download.download_mnist(fresh_machine, [mirror.url], timeout=10, progress=False)
    assert sorted(p.name for p in fresh_machine.iterdir()) == sorted(NAMES)
    assert data.load_mnist().source == "full"
    for name in NAMES:
        tries = [r for n, r in mirror.requests if n == name]
        assert len(tries) == 2 and tries[0] is None
        assert tries[1] == f"bytes={len(mirror.files[name]) // 2}-"  # asked to resume; the server decides


def test_an_interrupted_download_resumes_from_its_part_file(fresh_machine, mirror):
    """A run killed mid-download leaves only a hidden .part file, which the loader never reads
    and the next run continues from."""
    name = NAMES[2]
    fresh_machine.mkdir(parents=True)
    half = len(mirror.files[name]) // 2
    (fresh_machine / f".{name}.part").write_bytes(mirror.files[name][:half])
    with pytest.raises(data.DataError, match="not found"):
        data.find_mnist_root(None)  # a part file is not a file that looks finished
    download.download_mnist(fresh_machine, [mirror.url], timeout=10, progress=False, files=[name])
    assert mirror.requests == [(name, f"bytes={half}-")]
    assert sorted(p.name for p in fresh_machine.iterdir()) == [name]
    # a stale part from another copy (other bytes) fails its check and is fetched once afresh
    (fresh_machine / name).unlink()
    (fresh_machine / f".{name}.part").write_bytes(b"\x1f\x8b" + b"\0" * 100)
    mirror.requests.clear()
    download.download_mnist(fresh_machine, [mirror.url], timeout=10, progress=False, files=[name])
    assert [r for _, r in mirror.requests] == ["bytes=102-", None]
    assert data._content_md5(fresh_machine / name) == data.MNIST_MD5[name.removesuffix(".gz")]


def test_a_corrupt_file_the_search_finds_is_named(fresh_machine, mirror, tmp_path, monkeypatch):
    folder = tmp_path / "datasets"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_bytes(mirror.body(name))
    mirror.corrupt.add(NAMES[3])
    (folder / NAMES[3]).write_bytes(mirror.body(NAMES[3]))
    monkeypatch.setenv("KONDO_BENCH_DATA", str(folder))
    with pytest.raises(data.DataError, match=f"fail their checksum \\({NAMES[3].removesuffix('.gz')}\\)"):
        download.ensure_mnist([mirror.url], progress=False)
    assert fetched(mirror) == []
