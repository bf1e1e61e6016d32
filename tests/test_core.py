"""The torch-only core: importable without the runner's packages, usable in a loop of one's own,
and the very code the runner's learn step calls."""

import subprocess
import sys

import torch

from conftest import REPO
from kondo_bench import core, steps, train
from kondo_bench.core import Method, Selection, backward
from kondo_bench.tasks import Batch


def test_core_imports_without_hydra_omegaconf_pandas_matplotlib():
    code = ("import sys, kondo_bench.core; "
            "print(','.join(m for m in ('hydra', 'omegaconf', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_runner_learn_step_calls_the_core_backward(monkeypatch):
    calls = []
    monkeypatch.setattr(steps, "backward", lambda *a, **k: calls.append(k) or core.Learned())

    class T:
        own_loss_rows = "kept"
        learn = logp = own_loss = None

    batch = Batch(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    train.learn_step(T(), batch, Method("pg").select(torch.zeros(3), torch.zeros(3)))
    assert len(calls) == 1


def _linear(n=12, k=4):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, k)
    x, a = torch.randn(n, 3), torch.randint(k, (n,))
    seen = []

    def logp(rows):
        seen.append(rows.clone())
        return torch.log_softmax(net(x[rows]), 1).gather(1, a[rows, None])[:, 0]

    return net, logp, seen


def test_backward_runs_only_kept_rows_and_normalises_by_all_units():
    net, logp, seen = _linear()
    keep = torch.zeros(12, dtype=torch.bool)
    keep[[2, 7]] = True
    coef = torch.where(keep, torch.ones(12), torch.zeros(12))
    grads = []
    learned = backward(Selection(coef, keep, coef, None, torch.zeros(12)), logp,
                       lambda loss: grads.append(torch.autograd.grad(loss, net.weight)[0]))
    assert seen[0].tolist() == [2, 7]
    assert (learned.backward_rows, learned.kept_units, learned.optimizer_steps) == (2, 2, 1)
    # the same gradient as the masked full-batch loss -sum(coef log pi) / 12
    full = -(coef * logp(torch.arange(12))).sum() / 12
    assert torch.allclose(grads[0], torch.autograd.grad(full, net.weight)[0], atol=1e-6)


def test_backward_with_nothing_kept_takes_no_step():
    _, logp, seen = _linear()
    sel = Selection(torch.zeros(12), torch.zeros(12, dtype=torch.bool), torch.zeros(12), None, torch.zeros(12))
    learned = backward(sel, logp, lambda loss: (_ for _ in ()).throw(AssertionError("stepped")))
    assert learned == core.Learned() and seen == []


def test_backward_ppo_counts_epochs_and_minibatches():
    net, logp, seen = _linear()
    method = Method("ppo", epochs=3, minibatches=2, gate="topk", keep_rate=0.5)
    with torch.no_grad():
        sel = method.select(torch.randn(12), logp(torch.arange(12)))
    seen.clear()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    learned = backward(sel, logp, opt, method.estimator)
    assert learned.optimizer_steps == 6 and learned.backward_rows == 18 and learned.kept_units == 6
    assert sum(len(s) for s in seen) == 18


def test_a_gate_registered_outside_the_core_runs_through_method():
    @core.register_gate("test_first_half")
    class FirstHalf(core.Gate):
        def keep(self, score):
            keep = torch.zeros_like(score, dtype=torch.bool)
            keep[: len(score) // 2] = True
            return keep, None

    try:
        sel = Method("pg", gate="test_first_half").select(torch.ones(4), torch.zeros(4))
        assert sel.keep.tolist() == [True, True, False, False]
    finally:
        core.GATES.pop("test_first_half")


def test_own_loop_example_learns_and_saves_backward_samples():
    out = subprocess.run([sys.executable, str(REPO / "examples" / "own_loop.py"), "--steps", "150"],
                         capture_output=True, text=True, timeout=300, cwd="/", check=True).stdout
    # "accuracy A -> B; backward samples K of N screened (P% saved)"
    words = out.replace(";", " ").split()
    before, after = float(words[1]), float(words[3])
    kept, screened = int(words[6]), int(words[8])
    assert after > before + 0.3, out
    assert kept == 150 * round(0.1 * 256) and screened == 150 * 256, out
