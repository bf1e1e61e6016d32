"""task=vae (issue 18): closed forms, estimators, the gate's compaction, the CLI, refusals.

Most tests build the task on synthetic pixels (no MNIST, tiny networks); the CLI ones run the
real command line in-process on MNIST."""

import json
import math

import pytest
import torch

from conftest import make_cfg, needs_mnist_full
from kondo_bench import cli
from kondo_bench.validation import validate
from kondo_bench.methods import Method
from kondo_bench.tasks.baselines import grouped_advantage
from kondo_bench.train import learn_step
from kondo_bench.vae import task as vae_task
from kondo_bench.vae.model import CategoricalCode, GaussianCode, LinearGaussianDecoder
from kondo_bench.vae.pathwise import silent_weight
from kondo_bench.vae.task import VaeTask

CPU = torch.device("cpu")
TINY = ("task=vae", "task.hidden=[8]", "task.latent_dim=3", "task.batch_size=8", "task.var_images=8",
        "task.var_draws=3", "progress=false")


def tiny(*overrides: str, n: int = 64) -> VaeTask:
    """A VAE task on random pixel intensities (no MNIST), validated like a run's config."""
    cfg = make_cfg(*TINY, *overrides)
    validate(cfg)
    g = torch.Generator().manual_seed(0)
    return VaeTask.from_config(cfg, CPU, pixels=(torch.rand(n, 784, generator=g), torch.rand(32, 784, generator=g)))


def encoder_grads(task: VaeTask) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in task.vae.encoder.parameters()])


# ---------------------------------------------------------------- closed forms
@pytest.mark.parametrize("code", [GaussianCode(3), CategoricalCode(3, 4)], ids=["gaussian", "categorical"])
def test_linear_decoder_closed_form_equals_monte_carlo(code):
    """E_q[log N(x; Wz + b, sigma^2)] in closed form against the mean of 20,000 sampled codes,
    per image, within 4 standard errors (and the trace term is not zero: it matters)."""
    torch.manual_seed(1)
    decoder = LinearGaussianDecoder(code.width, init_var=0.3)
    params, x = torch.randn(4, code.outputs), (torch.rand(4, 784) < 0.3).float()
    with torch.no_grad():
        closed = decoder.expected_loglik(x, code, params)
        z = code.sample(params, 20_000)  # [4, N, D]
        z = z if code.kind == "gaussian" else code.decoder_input(z)
        ll = torch.stack([decoder.loglik(x[i].expand(z.shape[1], -1), z[i]) for i in range(4)])
        mc, se = ll.mean(1), ll.std(1) / math.sqrt(z.shape[1])
        assert ((closed - mc).abs() < 4 * se).all(), (closed, mc, se)
        assert (code.trace(decoder.linear.weight, params) > 10 * se).all()


def test_kl_closed_forms():
    g, c = GaussianCode(2), CategoricalCode(2, 5)
    assert torch.allclose(g.kl(torch.zeros(1, 4)), torch.zeros(1))  # q = prior
    assert torch.allclose(c.kl(torch.zeros(1, 10)), torch.zeros(1), atol=1e-6)
    one_class = torch.full((1, 10), -1e4)
    one_class[0, [0, 5]] = 0  # each variable certain: KL = D log K
    assert torch.allclose(c.kl(one_class), torch.tensor([2 * math.log(5)]))


# ---------------------------------------------------------------- estimators
def test_gumbel_straight_through_is_one_hot_forward_and_relaxed_backward():
    code, params = CategoricalCode(3, 4), torch.randn(5, 12, requires_grad=True)
    hard = code.gumbel(params, 6, tau=0.5, hard=True).unflatten(-1, (3, 4))
    assert set(hard.unique().tolist()) == {0.0, 1.0} and (hard.sum(-1) == 1).all()
    (hard * torch.randn_like(hard)).sum().backward()
    assert params.grad.abs().sum() > 0  # the relaxed sample's gradient flows back
    soft = code.gumbel(params, 6, tau=0.5, hard=False).unflatten(-1, (3, 4))
    assert torch.allclose(soft.sum(-1), torch.ones(5, 6, 3)) and ((soft > 0) & (soft < 1)).all()


def test_silent_weight_endpoints():
    for schedule in ("linear", "cosine"):
        m = make_cfg(*TINY, "method=silent", "method.anneal_steps=10", f"method.schedule={schedule}").method
        assert silent_weight(1, m) == 1 and silent_weight(11, m) == 0 and silent_weight(500, m) == 0
        assert 0 < silent_weight(6, m) < 1
    assert silent_weight(6, make_cfg(*TINY, "method=silent", "method.anneal_steps=10").method) == 0.5
    assert silent_weight(6, make_cfg(*TINY, "method=silent", "method.anneal_steps=10",
                                     "method.schedule=cosine").method) == pytest.approx(0.5)
    assert silent_weight(10 ** 6, make_cfg(*TINY, "method=silent", "method.schedule=constant").method) == 1


@pytest.mark.parametrize("overrides", [
    ("method=silent", "task.decoder=linear", "task.latent=gaussian", "method.schedule=constant"),
    ("method=silent",),  # the MLP decoder beside its linear one, at step 1 (w = 1): gumbel's share is 0
    ("method=silent", "method.into=pg"),
], ids=["linear-decoder", "mlp-decoder-w1", "into-pg-w1"])
def test_silent_gradient_has_zero_variance(overrides):
    task = tiny(*overrides)
    task.step = 1
    assert task.silent_weight() == 1
    assert task.gradient_variance()["encoder_grad_var"] == 0.0
    task.step = 200  # past the anneal: the stochastic estimator's variance
    if task.silent_weight() < 1:
        assert task.gradient_variance()["encoder_grad_var"] > 0


@pytest.mark.parametrize("overrides", [("method=reparam", "task.latent=gaussian"), ("method=gumbel",), ("method=pg",),
                                       ("method=dgk", "keep_rate=0.5")])
def test_sampled_estimators_have_variance(overrides):
    assert tiny(*overrides).gradient_variance()["encoder_grad_var"] > 0


@pytest.mark.parametrize("unit", ["sample", "latent"])
def test_reinforce_is_unbiased_by_enumeration(unit, monkeypatch):
    """The loop's REINFORCE step (leave-one-out baseline, exact KL) against the exact gradient of
    -E_q[log p(x|z)] + KL, by enumerating all 3^2 codes of one image; a baseline that includes
    the sample itself (biased by (S-1)/S) must fail the same check."""
    task = tiny("method=pg", "task.latent_dim=2", "task.classes=3", "task.samples=4", f"task.unit={unit}")
    image = task.x_var[:1]
    params = task.vae.encoder(image)
    codes = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # [9, 2]
    with torch.no_grad():
        ll = task.vae.decoder.loglik(image.expand(9, -1), task.code.decoder_input(codes))
    logq = task.code.logq(params, codes[None]).sum(-1)[0]  # [9]
    exact_loss = -(logq.exp() * ll).sum() + task.code.kl(params).sum()
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(exact_loss, list(task.vae.encoder.parameters()))])
    exact = exact / (2 if unit == "latent" else 1)  # per latent unit the loop divides by D
    task.x_var = image.expand(50, -1)  # each draw: 50 independent estimates of the same image

    def z2(draws: int = 120) -> torch.Tensor:
        g = torch.stack([task.encoder_gradient() for _ in range(draws)])
        return ((g.mean(0) - exact) / (g.std(0) / math.sqrt(draws)).clamp(min=1e-9)).square()

    ok = z2()
    assert ok.mean() < 1.5 and ok.max() < 40, (ok.mean(), ok.max())
    monkeypatch.setattr(vae_task, "leave_one_out", grouped_advantage)
    assert z2().mean() > 3


# ---------------------------------------------------------------- the gate
@pytest.mark.parametrize("unit", ["sample", "latent"])
def test_gate_compaction_equals_the_masked_batch(unit):
    """Top-k DG-K: the encoder's gradient from the kept rows alone, re-encoded compacted, equals the
    full batch's loss with the other rows masked (estimator terms and KL); the decoder learns from
    every row whatever the gate kept."""
    task = tiny("method=dgk", "keep_rate=0.25", "task.samples=2", f"task.unit={unit}")
    seen = []
    task.vae.encoder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    batch = task.act()
    method = task.method
    sel = method.select(batch.advantage, batch.logp)
    rows_kept = sel.keep.reshape(16, -1).any(1)
    params, captured = list(task.vae.encoder.parameters()), []

    def record(loss):  # takes the loss in place of the optimiser step: the encoder's gradient only
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        captured.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                   for g, p in zip(grads, params)]))

    learned = learn_step(task, batch, sel, method, step=record)
    compacted = captured[0]
    assert learned.backward_rows == int(rows_kept.sum()) and learned.kept_units == int(sel.keep.sum())
    images = batch.data["image"][rows_kept].unique().numel()
    assert seen == [8, images] and images < 8  # act encodes the 8 images; learn only the kept ones
    everything = torch.arange(16)
    task._cache = None
    logp = task.logp(batch, everything)
    masked = (-(sel.coef * sel.keep * logp)).sum() / sel.keep.numel() \
        + (task.own_loss(batch, everything) * rows_kept).sum() / 16
    full = torch.cat([g.reshape(-1) for g in torch.autograd.grad(masked, list(task.vae.encoder.parameters()))])
    assert torch.allclose(compacted, full, atol=1e-6)


def test_the_decoder_learns_from_every_row_under_a_gate():
    task = tiny("method=dgk", "keep_rate=0.1", "task.samples=2")
    before = [p.detach().clone() for p in task.vae.decoder.parameters()]
    batch = task.act()
    learn_step(task, batch, task.method.select(batch.advantage, batch.logp), task.method)
    assert all(not torch.equal(b, p) for b, p in zip(before, task.vae.decoder.parameters()))
    assert task._decoder_loss is None  # consumed by this step's learn, once


def test_evaluating_never_moves_training():
    task = tiny("method=gumbel")
    state = torch.get_rng_state()
    first = task.evaluate()
    assert torch.equal(state, torch.get_rng_state()) and task.evaluate() == first
    assert first["test_nelbo"] == pytest.approx(first["test_recon"] + first["test_kl"])


# ---------------------------------------------------------------- the command line
def _cli(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", *args])
    return exit_.value.code, capsys.readouterr()


@needs_mnist_full
def test_cli_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    """A sweep of a score-function, a gated and a pathwise method through `kondo-bench run -m`,
    then `summarize`: the VAE's metrics in every row, the gate's counts, the silent weight."""
    budget = (*TINY[:4], "task.steps=4", "task.eval_every=2", "task.var_draws=2")
    assert cli.main(["run", "-m", *budget, "method=pg,silent", f"hydra.sweep.dir={tmp_path}/sweep"]) == 0
    assert cli.main(["run", *budget, "method=dgk", "keep_rate=0.25", f"hydra.run.dir={tmp_path}/sweep/dgk"]) == 0
    summaries = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")}
    assert {s["method"] for s in summaries.values()} == {"pg", "silent", "dgk"}
    for s in summaries.values():
        assert s["status"] == "complete" and s["quality_metric"] == "test_nelbo" and s["eval_images"] == 10_000
        assert s["forward_samples"] == 4 * 8 * 2  # steps x images x codes per image
        assert {"test_recon", "test_kl", "encoder_grad_var"} <= set(s["final"])
    dgk = summaries["dgk"]
    assert dgk["backward_units"] == 4 * 4 and dgk["gate"] == "topk"  # a quarter of 16 rows a step
    silent = next(s for s in summaries.values() if s["method"] == "silent")
    assert silent["final"]["silent_weight"] == pytest.approx(1 - 3 / 1000)
    assert silent["backward_samples"] == silent["forward_samples"] and silent["reforward_samples"] == 0
    assert cli.main(["summarize", str(tmp_path / "sweep")]) == 0
    assert "test_nelbo" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["method=reparam"], "runs on task=vae only"),
    (["task=vae", "method=reparam"], "method=reparam needs task.latent=gaussian"),
    (["task=vae", "method=gumbel", "task.latent=gaussian"], "method=gumbel needs task.latent=categorical"),
    (["task=vae", "method=dgk", "task.latent=gaussian"], "DG and the Kondo gate run on task.latent=categorical"),
    (["task=vae", "method=gumbel", "method.gate=topk", "keep_rate=0.1"], "no per-sample score term for a gate"),
    (["task=vae", "method=reparam", "task.latent=gaussian", "keep_rate=0.1"], "drop keep_rate, price and method.gate"),
    (["task=vae", "method=pg", "task.samples=1"], "leave-one-out baseline"),
    (["task=vae", "method=ce"], "method=ce (the supervised oracle) cannot run"),
    (["task=vae", "method=silent", "method.into=pg", "method.tau=0.5"], "read by the gumbel estimator only"),
    (["task=vae", "method=silent", "method.anneal_steps=0"], "method.anneal_steps=0 is out of range"),
    (["task=vae", "method=pg", "method.tau=0.5"], "Key 'tau' not in"),
    (["task=vae", "task.latent=bogus"], "expected one of [gaussian, categorical]"),
    (["task=vae", "staleness=1"], "staleness is not supported on task=vae"),
])
def test_bad_keys_are_refused_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = _cli([*args, "task.steps=2"], capsys)
    assert code == 2 and out.err.count("\n") == 1 and message in out.err, out.err
    assert not list(tmp_path.iterdir())


def test_a_pathwise_step_reports_what_it_did_with_no_batch_or_selection():
    """reparam, gumbel and silent are a step kind of their own (steps.PathwiseStep): the task's step
    returns its rewards and counts; nothing builds an empty batch or selection for the loop."""
    from kondo_bench.accounting import PhaseTimer
    from kondo_bench.reliability import NumericsGuard
    from kondo_bench.steps import PathwiseStep, Stepped

    task = tiny("method=reparam", "task.latent=gaussian")
    cpu = torch.device("cpu")
    out = PathwiseStep(task, PhaseTimer(cpu), NumericsGuard(cpu))(1)
    assert type(out) is Stepped and out.price is None
    assert out.screened_units == out.reward.numel() == out.learned.backward_rows == 16
