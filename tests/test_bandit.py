"""The tabular bandit: closed-form gradients and the paper's zero-price claim."""

import torch

from conftest import make_cfg
from kondo_bench.methods import Method
from kondo_bench.tasks.bandit import BanditTask, cross_entropy_direction, exact_gradient, misalignment
from kondo_bench.train import learn_step


def test_exact_gradient_matches_autograd():
    logits = torch.randn(7, 10, requires_grad=True)
    target = torch.randint(10, (7,))
    logits.softmax(-1).gather(-1, target[:, None]).mean().backward()
    assert torch.allclose(exact_gradient(logits.detach(), target), logits.grad, atol=1e-7)


def test_single_context_closed_form():
    """g* = pi(y*)(e_y* - pi): with uniform logits over K arms, (1/K)(e_y* - 1/K)."""
    k = 4
    g = exact_gradient(torch.zeros(1, k), torch.tensor([2]))
    assert torch.allclose(g, torch.tensor([[-1, -1, 3, -1]]) / k**2)


def test_misalignment_values():
    g = torch.randn(3, 5)
    assert abs(misalignment(g, g)) < 1e-6
    assert abs(misalignment(g, -g) - 2) < 1e-6
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert abs(misalignment(a, b) - 1) < 1e-6


def task(*overrides):
    return BanditTask(make_cfg("task=bandit", *overrides).task, torch.device("cpu"))


def estimate(t, method):
    batch = t.act() if method.gated else t.act_with_grad()
    sel = method.select(batch.advantage, batch.logp)
    learn_step(t, batch, sel)
    return t.evaluate()["misalignment"]


def test_pg_estimate_aligns_with_true_gradient_on_a_large_batch():
    t = task("task.batch_size=200000")
    assert estimate(t, Method("pg")) < 0.01


def test_zero_price_hard_gate_has_no_perpendicular_noise():
    """Only correct-arm samples pass, each exactly parallel to the true gradient."""
    t = task("task.steps=1")
    values = [estimate(t, Method("dgk", eta=0.0, gate="price", price=0.0)) for _ in range(30)]
    pg = [estimate(task(), Method("pg")) for _ in range(5)]
    taken = [v for v in values if v is not None]
    assert taken and max(taken) < 1e-5
    assert min(pg) > 0.1  # PG at B = 100 is far from parallel


def test_multi_context_logs_cross_entropy_misalignment():
    t = BanditTask(make_cfg("task=bandit_multi").task, torch.device("cpu"))
    m = Method("pg")
    batch = t.act_with_grad()
    learn_step(t, batch, m.select(batch.advantage, batch.logp))
    out = t.evaluate()
    assert 0 <= out["misalignment"] <= 2 and 0 <= out["misalignment_ce"] <= 2
    assert cross_entropy_direction(t.logits.detach(), t.target).shape == (100, 10)


def test_dg_learns_the_single_context_bandit(tmp_path):
    from kondo_bench.train import run_experiment
    s = run_experiment(make_cfg("task=bandit", "method=dg", "task.steps=300", "progress=false"), tmp_path)
    assert s["final_quality"] < 0.2  # from 0.99 at uniform logits
