"""DG weights and Kondo gates on hand-made tensors."""

import pytest
import torch

from kondo_bench.config import Ties
from kondo_bench.methods import Method, delight, price_for_keep_rate, sigmoid_weight, topk_gate


def batch(n=1000):
    adv = torch.randn(n)
    logp = -torch.rand(n) * 5
    return adv, logp


def test_delight_is_advantage_times_surprisal():
    adv, logp = torch.tensor([1.0, -2.0, 0.5]), torch.log(torch.tensor([0.5, 0.25, 1.0]))
    assert torch.allclose(delight(adv, logp), torch.tensor([0.6931472, -2.7725887, 0.0]))


def test_dg_large_eta_is_half_pg():
    adv, logp = batch()
    dg = Method("dg", eta=1e9).select(adv, logp)
    pg = Method("pg").select(adv, logp)
    assert torch.allclose(dg.coef, 0.5 * pg.coef, atol=1e-6)
    assert dg.keep.all() and pg.keep.all()


def test_dg_zero_eta_keeps_only_positive_delight():
    adv, logp = batch()
    sel = Method("dg", eta=0.0).select(adv, logp)
    chi = adv * -logp
    assert torch.equal(sel.coef, torch.where(chi > 0, adv, torch.zeros_like(adv)))


def test_weight_is_a_constant_for_autograd():
    """The DG gradient is sum_t w_t U_t grad log pi: no gradient flows through w_t."""
    logits = torch.randn(6, 4, requires_grad=True)
    action = torch.tensor([0, 1, 2, 3, 0, 1])
    adv = torch.tensor([1.0, -1.0, 0.5, 2.0, -0.3, 0.7])
    logp = logits.log_softmax(-1).gather(-1, action[:, None])[:, 0]
    sel = Method("dg", eta=1.0).select(adv, logp)  # given logp *with* its graph, on purpose
    assert not sel.coef.requires_grad
    (-(sel.coef * logp).sum()).backward()
    with torch.no_grad():
        pi = logits.softmax(-1)
        w = torch.sigmoid(adv * -logp)
        expected = -(w * adv)[:, None] * (torch.nn.functional.one_hot(action, 4) - pi)
    assert torch.allclose(logits.grad, expected, atol=1e-6)


@pytest.mark.parametrize("rho", [0.03, 0.1, 0.5])
def test_quantile_gate_keep_rate_matches_rho(rho):
    adv, logp = batch(200_000)
    sel = Method("dgk", eta=1.0, gate="quantile", keep_rate=rho).select(adv, logp)
    assert abs(sel.keep.float().mean().item() - rho) < 0.005
    assert sel.price is not None


@pytest.mark.parametrize("rho", [0.03, 0.1, 1.0])
def test_topk_keeps_exactly_k(rho):
    adv, logp = batch(1000)
    sel = Method("dgk", gate="topk", keep_rate=rho).select(adv, logp)
    assert sel.keep.sum().item() == round(rho * 1000)
    chi = adv * -logp
    assert chi[sel.keep].min() >= chi[~sel.keep].max() if rho < 1 else True


def test_topk_ties():
    score = torch.tensor([3.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert topk_gate(score, 0.2, Ties.all).sum() == 4  # the k-th value is tied three ways
    keep = topk_gate(score, 0.2, Ties.random)
    assert keep.sum() == 2 and keep[0]
    picks = torch.stack([topk_gate(score, 0.2, Ties.random) for _ in range(300)])[:, 1:4].float().mean(0)
    assert (picks > 0.2).all()  # each tied unit is picked sometimes: ties are broken at random


def test_quantile_gate_hard_limit_is_topk():
    adv, logp = batch(1000)
    sel = Method("dgk", eta=0.0, gate="quantile", keep_rate=0.1).select(adv, logp)
    assert sel.keep.sum() == 100


def test_zero_price_gate_is_unbiased_dg():
    """At price 0, E[gate * U] = sigma(chi/eta) U: the DG coefficient."""
    adv, logp = batch(50)
    method = Method("dgk", eta=1.0, gate="price", price=0.0)
    mean_coef = torch.stack([method.select(adv, logp).coef for _ in range(20_000)]).mean(0)
    dg = Method("dg", eta=1.0).select(adv, logp).coef
    assert torch.allclose(mean_coef, dg, atol=0.05)


def test_hard_zero_price_keeps_positive_delight():
    adv, logp = batch()
    sel = Method("dgk", eta=0.0, gate="price", price=0.0).select(adv, logp)
    assert torch.equal(sel.keep, adv * -logp > 0)


def test_infinite_price_keeps_nothing():
    adv, logp = batch()
    sel = Method("dgk", eta=1.0, gate="price", price=1e9).select(adv, logp)
    assert not sel.keep.any() and (sel.coef == 0).all()


def test_kept_weight_dg_multiplies_by_sigmoid():
    adv, logp = batch(100)
    one = Method("dgk", gate="topk", keep_rate=1.0).select(adv, logp)
    dgw = Method("dgk", gate="topk", keep_rate=1.0, kept_weight="dg").select(adv, logp)
    assert torch.allclose(one.coef, adv)
    assert torch.allclose(dgw.coef, sigmoid_weight(adv * -logp, 1.0) * adv)


def test_price_for_keep_rate_solves_expected_rate():
    chi = torch.randn(5000) * 3
    lam = price_for_keep_rate(chi, 0.2, 0.5)
    assert abs(torch.sigmoid((chi - lam) / 0.5).mean().item() - 0.2) < 1e-4


def test_selection_works_on_token_shaped_tensors():
    adv = torch.randn(8, 1).expand(8, 5).contiguous()
    logp = -torch.rand(8, 5) * 3
    sel = Method("dgk", gate="topk", keep_rate=0.25).select(adv, logp)
    assert sel.keep.shape == (8, 5) and sel.keep.sum() == 10


def test_sample_categorical_matches_the_distribution_and_never_picks_a_zero_probability():
    from kondo_bench.tasks import sample_categorical

    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2]]).expand(200_000, 5)
    a = sample_categorical(probs)
    freq = torch.bincount(a, minlength=5).double() / a.numel()
    assert freq[0] == 0 and freq[2] == 0
    assert torch.allclose(freq, probs[0].double(), atol=0.005)
    # a batch of different rows, each sampled from its own distribution
    rows = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    assert sample_categorical(rows).tolist() == [0, 2, 1]


def test_sample_categorical_gives_no_leftover_mass_to_the_last_action():
    """A cumulative sum that ends below 1 (rounding, or a row that does not quite sum to 1)
    must not hand the gap to the last action: frequencies stay proportional to the row."""
    from kondo_bench.tasks import sample_categorical

    torch.manual_seed(0)
    short = torch.tensor([[0.5, 0.3, 0.0]]).expand(200_000, 3)  # sums to 0.8; action 2 is impossible
    freq = torch.bincount(sample_categorical(short), minlength=3).double() / 200_000
    assert freq[2] == 0
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0], dtype=torch.float64), atol=0.005)
    # near-degenerate float32 softmax: one action holds almost all mass, the last holds none
    logits = torch.cat([torch.tensor([30.0]), torch.zeros(998), torch.tensor([-float("inf")])])
    probs = logits.softmax(-1).expand(100_000, 1000)
    a = sample_categorical(probs)
    assert (a == 999).sum() == 0
    assert (a == 0).double().mean() > 0.999


def test_keep_rate_note_names_the_effective_rate_when_k_is_rounded():
    m = Method("dgk", gate="topk", keep_rate=0.003)
    note = m.keep_rate_note(100)
    assert note is not None and "= 1 of the 100" in note and "0.01" in note
    assert m.keep_rate_note(10_000) is None  # 30 of 10,000: exact
    assert Method("dgk", gate="topk", keep_rate=0.03).keep_rate_note(100) is None
    assert Method("dgk", gate="price", price=0.1).keep_rate_note(100) is None
    assert Method("dgk", gate="quantile", keep_rate=0.003, eta=1.0).keep_rate_note(100) is None  # soft: exact in expectation
