import os
import signal
import subprocess
from contextlib import contextmanager
import sys
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
