"""PPO, PMPO, screening signals, delight noise, reward noise."""

import pytest
import torch

from conftest import make_cfg
from kondo_bench.methods import Method, screening_score, topk_gate
from kondo_bench.tasks.bandit import BanditTask
from kondo_bench.train import Learned, learn_step, run_experiment
from test_train import TinyTask, grads


def test_ppo_one_epoch_one_minibatch_is_pg():
    task = TinyTask()
    batch = task.act_with_grad()
    learn_step(task, batch, Method("pg").select(batch.advantage, batch.logp), Method("pg"))
    pg = grads(task)
    ppo = Method("ppo", epochs=1, minibatches=1, kl=0.5)
    assert ppo.gated  # PPO acts without a graph and re-runs the forward pass, as the loop does
    batch.logp_grad = None
    assert learn_step(task, batch, ppo.select(batch.advantage, batch.logp), ppo) == Learned(64, 64, 64, 1, 64)
    assert torch.allclose(pg, grads(task), atol=1e-6)


def test_ppo_epochs_and_minibatches_count_backward_passes():
    task = TinyTask()
    batch = task.act()
    ppo = Method("ppo", epochs=3, minibatches=4)
    # every epoch's backward passes count, each kept unit once in the keep rate, and each
    # minibatch is an optimiser step
    assert learn_step(task, batch, ppo.select(batch.advantage, batch.logp), ppo) == Learned(192, 192, 64, 12, 192)
    assert task.seen_rows == [16] * 12


def test_ppo_clips_the_ratio():
    logp_old = torch.zeros(2)
    logp = torch.log(torch.tensor([1.5, 1.5])).requires_grad_()
    coef = torch.tensor([1.0, -1.0])  # ratio 1.5 > 1 + clip: no gradient for U > 0
    Method("ppo", clip=0.2).loss(coef, logp, logp_old).sum().backward()
    assert logp.grad[0] == 0 and logp.grad[1] != 0


def test_pmpo_coefficients():
    adv = torch.tensor([1.0, 2.0, -1.0, 0.0])
    sel = Method("pmpo", alpha=0.75, kl=0.1).select(adv, torch.zeros(4))
    # preferred: 0.75 * 4 / 2 each; rejected: -0.25 * 4 / 1; plus beta everywhere
    assert torch.allclose(sel.coef, torch.tensor([1.6, 1.6, -0.9, 0.1]))


def test_each_signal_ranks_a_hand_made_batch():
    adv = torch.tensor([1.0, -2.0, 0.5, 0.0])
    logp = torch.log(torch.tensor([0.5, 0.01, 0.01, 0.9]))
    chi = adv * -logp
    top = lambda s: int(screening_score(s, adv, logp, chi, 0.5).argmax())  # noqa: E731
    assert top("delight") == 2  # 0.5 * 4.6 beats 1 * 0.69
    assert top("advantage") == 0
    assert top("abs_advantage") == 1
    assert top("surprisal") in (1, 2)
    # additive ranks the failing rare action above the succeeding common one at alpha = 0.5
    add = screening_score("additive", adv, logp, chi, 0.5)
    assert add[1] > add[0]
    assert chi[1] < chi[0]  # delight does not


def test_additive_with_alpha_one_is_advantage():
    adv, logp = torch.randn(100), -torch.rand(100) * 3
    a = Method("dgk", gate="topk", keep_rate=0.2, signal="additive", signal_alpha=1.0, ties="all")
    b = Method("dgk", gate="topk", keep_rate=0.2, signal="advantage", ties="all")
    assert torch.equal(a.select(adv, logp).keep, b.select(adv, logp).keep)


def test_random_gate_keep_rate_and_independence():
    adv, logp = torch.randn(10_000), -torch.rand(10_000) * 3
    m = Method("dgk", gate="quantile", eta=0.1, keep_rate=0.1, signal="random")
    keep = m.select(adv, logp).keep
    assert abs(keep.float().mean().item() - 0.1) < 0.01
    chi = adv * -logp
    assert abs(chi[keep].mean() - chi.mean()) < 0.15  # not selected by delight
    assert topk_gate(torch.rand(1000), 0.1).sum() == 100


def test_zero_delight_noise_changes_nothing():
    adv, logp = torch.randn(500), -torch.rand(500) * 3
    torch.manual_seed(1)
    a = Method("dgk", gate="price", price=0.5, delight_noise=0.0).select(adv, logp)
    torch.manual_seed(1)
    b = Method("dgk", gate="price", price=0.5).select(adv, logp)
    assert torch.equal(a.keep, b.keep) and torch.equal(a.coef, b.coef)
    c = Method("dg", delight_noise=0.5).select(adv, logp)
    assert not torch.allclose(c.coef, Method("dg").select(adv, logp).coef)


def test_gambling_noise_only_on_a_fraction_of_wrong_arms():
    cfg = make_cfg("task=bandit_multi", "task.reward_noise=3", "task.noisy_arms=0.5").task
    t = BanditTask(cfg, torch.device("cpu"))
    noisy = t.noise_std > 0
    assert (noisy.sum(1) == round(0.5 * 9)).all()
    assert not noisy.gather(1, t.target[:, None]).any()
    homo = BanditTask(make_cfg("task=bandit", "task.reward_noise=1").task, torch.device("cpu"))
    assert (homo.noise_std == 1).all()


@pytest.mark.parametrize("args", [["method=ppo"], ["method=pmpo"],
                                  ["method=dgk", "keep_rate=0.1", "method.signal=random"],
                                  ["method=dgk", "keep_rate=0.1", "method.signal=additive"]])
def test_methods_run_end_to_end(tmp_path, args):
    s = run_experiment(make_cfg("task=bandit", "task.steps=100", "progress=false", *args), tmp_path)
    assert s["status"] == "complete" and s["final_quality"] < 0.99


def test_staleness_acts_with_old_parameters(tmp_path):
    from kondo_bench.train import StalePolicy
    task = TinyTask()
    stale = StalePolicy(task, staleness=2)
    first = [p.detach().clone() for p in stale.params]
    for _ in range(3):
        with torch.no_grad():
            for p in stale.params:
                p.add_(1.0)
        stale.after_step()
    with stale.acting():  # three updates later, acting sees the parameters of two steps ago
        assert torch.allclose(stale.params[0], first[0] + 1)
    assert torch.allclose(stale.params[0], first[0] + 3)  # and the learner gets the current ones back
    s = run_experiment(make_cfg("task=bandit", "method=dg", "staleness=3", "task.steps=50",
                                "progress=false"), tmp_path)
    assert s["status"] == "complete" and s["reforward_samples"] == 5000
