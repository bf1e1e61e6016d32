import os
import signal
import subprocess
from contextlib import contextmanager
import sys
import time
from pathlib import Path

import pytest
import torch
from kondo_bench.compose import compose
REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"  # the test pair only: the fallback
SHARED_MNIST_FULL = REPO.parent / "shared" / "data" / "mnist-full"  # all four files: the default


def make_cfg(*overrides: str):
    """The real composed config, with overrides, as the CLI would build it."""
    return compose(overrides)


def kb(*args: str, cwd, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run the installed command line in a subprocess."""
    cmd = [sys.executable, "-m", "kondo_bench.cli", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


needs_mnist = pytest.mark.skipif(not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                                 reason="shared MNIST test split not present")
needs_mnist_full = pytest.mark.skipif(not (SHARED_MNIST_FULL / "train-images-idx3-ubyte.gz").exists(),
                                      reason="shared full MNIST set (../shared/data/mnist-full) not present")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    """`slow` tests run only with KONDO_SLOW=1; `gpu` tests only where CUDA is visible."""
    skip_slow = pytest.mark.skip(reason="slow: set KONDO_SLOW=1 to run")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and os.environ.get("KONDO_SLOW") != "1":
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@contextmanager
def sigterm_at_evaluation(task_cls, n: int):
    """While inside, the n-th call of task_cls.evaluate sends this process a SIGTERM first."""
    original, calls = task_cls.evaluate, {"n": 0}

    def evaluate(self):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(task_cls, "evaluate", evaluate)
        yield


# ---------------------------------------------------------------- processes a test starts

def wait_for(condition, timeout: float = 120) -> None:
    """Poll until condition() holds; a deadline only so that a broken run fails instead of hanging."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def descendants(pid: int) -> set[int]:
    """Every live process under pid (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- MNIST as a fresh machine gets it
class Mirror:
    """A throw-away HTTP mirror on 127.0.0.1 serving the four MNIST .gz files from memory.

    `corrupt`: names served with one content byte changed (a well-formed gzip of the wrong data);
    `drop`: names whose first response stops half-way and closes the connection;
    `ranges`: whether Range requests are honoured (206) or ignored (the whole file, 200).
    `requests` logs (path, Range header) of every GET."""

    def __init__(self, files: dict[str, bytes]):
        import http.server
        import threading

        self.files, self.corrupt, self.drop, self.ranges, self.requests = dict(files), set(), set(), True, []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                mirror.requests.append((name, self.headers.get("Range")))
                if name not in mirror.files:
                    self.send_error(404)
                    return
                body = mirror.body(name)
                start = 0
                if mirror.ranges and (r := self.headers.get("Range")):
                    start = int(r.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if name in mirror.drop:  # half of what is due, then hang up (once per file)
                    mirror.drop.discard(name)
                    self.wfile.write(body[start:start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"

    def body(self, name: str) -> bytes:
        import gzip

        if name not in self.corrupt:
            return self.files[name]
        content = bytearray(gzip.decompress(self.files[name]))
        content[-1] ^= 0x01
        return gzip.compress(bytes(content), mtime=0)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def mnist_source():
    """The four MNIST .gz files as bytes, and whether they are the real ones.

    The real set where this machine has it; else stand-ins of the real shapes (all zeros: tiny
    as gzip), whose checksums a test swaps in for the canonical ones (`fresh_machine` does)."""
    import gzip

    import numpy as np

    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if all((SHARED_MNIST_FULL / f"{n}.gz").is_file() for n in names):
        return {f"{n}.gz": (SHARED_MNIST_FULL / f"{n}.gz").read_bytes() for n in names}, True
    files = {}
    for n in names:
        count = 60000 if n.startswith("train") else 10000
        shape = (count, 28, 28) if "images" in n else (count,)
        header = bytes([0, 0, 8, len(shape)]) + np.array(shape, ">u4").tobytes()
        files[f"{n}.gz"] = gzip.compress(header + bytes(int(np.prod(shape))), mtime=0)
    return files, False


@pytest.fixture
def mirror(mnist_source):
    m = Mirror(mnist_source[0])
    yield m
    m.close()


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch, mnist_source):
    """A machine with no MNIST anywhere: a fresh HOME, no data folder beside the checkout or
    the current directory (tmp_path/cwd), no KONDO_BENCH_DATA. Yields the per-user folder."""
    import gzip
    import hashlib

    from kondo_bench import data

    files, real = mnist_source
    if not real:
        monkeypatch.setattr(data, "MNIST_MD5", {n.removesuffix(".gz"): hashlib.md5(gzip.decompress(b)).hexdigest()
                                                for n, b in files.items()})
    for var in ("KONDO_BENCH_DATA", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "cwd").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "checkout" / "kondo-bench")
    data._CACHE.clear()
    yield tmp_path / "home" / ".local" / "share" / "kondo-bench" / "mnist"
    data._CACHE.clear()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and two stall badly on a busy 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
