"""Estimator x gate: every pair runs the real loop on every task, compaction is exact for each
estimator, PPO's counts, and knobs a pair would ignore are refused."""

import json

import pytest
import torch

from conftest import kb, make_cfg, needs_mnist
from kondo_bench.validation import validate
from kondo_bench.errors import UserError
from kondo_bench.methods import Method
from kondo_bench.results import RunWriter
from kondo_bench.tasks import draw, make_task
from kondo_bench.train import learn_step, run_experiment, train
from test_train import TinyTask, grads

ESTIMATORS = ("pg", "dg", "ppo", "pmpo", "ce")
GATES = {"none": (), "price": ("price=0.1",), "quantile": ("keep_rate=0.5",), "topk": ("keep_rate=0.5",)}
# the smallest budget of each task that still acts, screens, gates, learns and evaluates
TINY = {"bandit": ("task.batch_size=20",),
        "mnist": ("task.batch_size=20", "task.hidden=[8]"),
        "reversal": ("task.horizon=3", "task.d_model=8", "task.layers=1", "task.heads=1", "task.ffn=8",
                     "task.eval_prompts=4", "task.batch_size=8", "task.samples_per_prompt=4")}


@pytest.fixture(scope="module", params=["bandit", pytest.param("mnist", marks=needs_mnist), "reversal"])
def task_cfg(request):
    """One task per module (MNIST loads its data once); each pair below trains it further.
    One thread: these models are too small for a second one to pay on a shared CPU."""
    name, threads = request.param, torch.get_num_threads()
    cfg = make_cfg(f"task={name}", "task.steps=2", "task.eval_every=2", "progress=false", *TINY[name])
    torch.set_num_threads(1)
    yield name, make_task(cfg, torch.device("cpu"))
    torch.set_num_threads(threads)


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_through_every_gate(task_cfg, estimator, gate, tmp_path):
    name, task = task_cfg
    cfg = make_cfg(f"task={name}", "task.steps=2", "task.eval_every=2", "progress=false", *TINY[name],
                   f"method={estimator}", f"method.gate={gate}", *GATES[gate],
                   *(("method.epochs=2", "method.minibatches=2") if estimator == "ppo" else ()))
    validate(cfg)
    method = Method.from_config(cfg)
    assert (method.estimator.name, method.gate.name) == (estimator, gate)
    result = train(cfg, task, method, RunWriter(tmp_path), torch.device("cpu"))
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert result["status"] == "complete" and row["step"] == 2
    assert 0 < row["keep_rate"] <= 1 if gate != "price" else 0 <= row["keep_rate"] <= 1
    if gate == "none":
        assert row["keep_rate"] == 1 and row["backward_samples"] == 2 * cfg.task.batch_size * method.estimator.epochs
    if gate == "topk":
        assert row["keep_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_topk_compaction_equals_the_masked_full_batch(estimator):
    """Through the top-k gate, the compacted re-forward of kept rows gives the gradient of the
    full batch with the other rows' terms masked out, for every estimator's terms."""
    task = TinyTask()
    batch = draw(task, grad=False, oracle=estimator == "ce")
    task.seen_rows.clear()  # the oracle's screen reads the targets' log pi over every row
    method = Method(estimator, gate="topk", keep_rate=0.25)
    sel = method.select(batch.advantage, batch.logp)
    learned = learn_step(task, batch, sel, method)
    assert learned.kept_units == 16 and task.seen_rows == [16]
    compacted = grads(task)
    logp_full = task.net(task.x).log_softmax(-1).gather(-1, batch.data["action"][:, None])[:, 0]
    task.learn((method.loss(sel.coef, logp_full, batch.logp) * sel.keep).sum() / 64)
    assert torch.allclose(compacted, grads(task), atol=1e-6)


def test_ppo_keep_rate_is_at_most_one_and_steps_are_counted(tmp_path):
    s = run_experiment(make_cfg("task=bandit", "method=ppo", "task.steps=4", "task.eval_every=2",
                                "progress=false"), tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["keep_rate"] for r in rows] == [1.0, 1.0]
    assert s["optimizer_steps"] == 4 * 4 * 4  # steps x epochs x minibatches
    assert s["backward_samples"] == 4 * s["forward_samples"]  # each epoch's backward passes count


def test_bf16_screen_recomputes_ppo_old_logp_in_fp32():
    """With a bf16 screen, the first minibatch's ratio is exactly 1: old log pi is recomputed."""
    task = TinyTask()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batch = task.act()
    ppo = Method("ppo", epochs=1, minibatches=1, clip=0.0)
    seen = []
    original = ppo.estimator.loss
    ppo.estimator.loss = lambda coef, logp, old: seen.append((logp - old).abs().max().item()) or original(coef, logp, old)
    learned = learn_step(task, batch, ppo.select(batch.advantage, batch.logp), ppo, refresh_old=True)
    assert seen == [0.0] and learned.reforward_rows == 2 * 64


@pytest.mark.parametrize("overrides, message", [
    (("method=dg", "keep_rate=0.03"), "keep_rate=0.03 is ignored by method=dg"),
    (("method=pg", "price=0.1"), "price=0.1 is ignored"),
    (("method=pg", "method.epochs=3"), "method.epochs=3 is ignored"),
    (("method=ppo", "method.alpha=0.7"), "method.alpha=0.7 is ignored"),
    (("method=pg", "method.signal=random"), "method.signal=random is ignored"),
    (("method=dgk", "keep_rate=0.1", "method.eta=0.5"), "method.eta=0.5 is ignored"),
    (("method=ppo", "method.kept_weight=dg", "method.gate=topk", "keep_rate=0.1"), "kept_weight=dg"),
    (("method=dg", "screen_precision=bf16"), "screen_precision=bf16 is ignored"),
])
def test_ignored_knobs_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(make_cfg("task=bandit", *overrides))


def test_knobs_a_pair_reads_are_accepted():
    for overrides in (("method=pg", "method.gate=topk", "keep_rate=0.1", "method.signal=random"),
                      ("method=ppo", "method.gate=price", "price=0.2", "method.eta=0.5"),
                      ("method=dgk", "method.eta=0", "price=0"), ("method=dgk", "method.kept_weight=dg"),
                      ("method=pmpo", "method.kl=0.1", "method.alpha=0.7"), ("method=dg", "method.eta=0.5")):
        validate(make_cfg("task=bandit", *overrides))


def test_refused_knob_exits_2_with_one_line(tmp_path):
    r = kb("run", "task=bandit", "method=dg", "keep_rate=0.03", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "keep_rate=0.03 is ignored by method=dg" in r.stderr and not (tmp_path / "run" / "summary.json").exists()


def test_device_deterministic_sets_torch_and_can_be_turned_off(tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    try:
        run_experiment(make_cfg("task=bandit", "task.steps=2", "task.eval_every=2", "progress=false",
                                "device.deterministic=false"), tmp_path / "off")
        assert not torch.are_deterministic_algorithms_enabled()
        run_experiment(make_cfg("task=bandit", "task.steps=2", "task.eval_every=2", "progress=false"), tmp_path / "on")
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


class OwnLossTask(TinyTask):
    """TinyTask with a loss of its own on every row (a stand-in for a decoder's reconstruction)."""

    own_loss_rows = "all"

    def own_loss(self, batch, rows):
        return self.net(self.x[rows]).pow(2).mean(-1)


def test_a_task_loss_of_its_own_runs_beside_the_gated_terms():
    """Through top-k, every row the task asks for is re-run, and the gradient is the masked
    estimator terms plus the task's own loss over all rows."""
    task = OwnLossTask()
    batch = task.act()
    method = Method("dgk", gate="topk", keep_rate=0.25)
    sel = method.select(batch.advantage, batch.logp)
    learned = learn_step(task, batch, sel, method)
    assert task.seen_rows == [64] and learned.backward_rows == 64 and learned.kept_units == 16
    compacted = grads(task)
    logp_full = task.net(task.x).log_softmax(-1).gather(-1, batch.data["action"][:, None])[:, 0]
    task.learn((-(sel.coef * sel.keep * logp_full)).sum() / 64 + task.own_loss(batch, torch.arange(64)).sum() / 64)
    assert torch.allclose(compacted, grads(task), atol=1e-6)


def test_a_run_finished_before_the_split_is_still_recognised(tmp_path):
    """A summary written before method.estimator and device.deterministic existed (and with
    gate auto on every preset) is the same computation: a rerun skips it. PPO's reruns."""
    args = ("task=bandit", "task.steps=2", "task.eval_every=2", "progress=false")
    for method, skipped in (("pg", True), ("ppo", False)):
        out = tmp_path / method
        run_experiment(make_cfg(*args, f"method={method}"), out)
        summary = json.loads((out / "summary.json").read_text())
        old = summary["result_config"]
        del old["method"]["estimator"], old["device"]["deterministic"]
        old["method"]["gate"] = "auto"
        (out / "summary.json").write_text(json.dumps(summary))
        if skipped:
            assert run_experiment(make_cfg(*args, f"method={method}"), out).get("skipped")
        else:
            with pytest.raises(UserError, match="different config"):
                run_experiment(make_cfg(*args, f"method={method}"), out)
