"""The loop: compaction, skipped steps, accounting, reproducibility, run files."""

import json

import pytest
import torch

from conftest import SHARED_MNIST, make_cfg, needs_mnist
from kondo_bench.errors import UserError
from kondo_bench.methods import Method
from kondo_bench.tasks import Batch, Task
from kondo_bench.train import Learned, learn_step, run_experiment


class TinyTask(Task):
    """A 2-layer softmax policy over fixed random contexts; counts rows it re-forwards."""

    def __init__(self, n=64, k=5):
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, k))
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.x = torch.randn(n, 8)
        self.seen_rows = []

    def act(self):
        return self._act(grad=False)

    def act_with_grad(self):  # the one-pass shortcut: sampling's forward keeps its graph
        return self._act(grad=True)

    def _act(self, grad):
        with torch.set_grad_enabled(grad):
            logp_all = self.net(self.x).log_softmax(-1)
        action = torch.multinomial(logp_all.detach().exp(), 1)[:, 0]
        reward = (action == 0).float()
        logp = logp_all.gather(-1, action[:, None])[:, 0]
        return Batch(logp.detach(), reward - 0.3, reward, logp if grad else None,
                     {"action": action, "target": torch.zeros_like(action)})

    def logp(self, batch, rows):
        self.seen_rows.append(rows.numel())
        return self.net(self.x[rows]).log_softmax(-1).gather(-1, batch.data["action"][rows, None])[:, 0]

    def learn(self, loss):  # keep the gradient for inspection; no step
        self.net.zero_grad()
        loss.backward()


def grads(task):
    return torch.cat([p.grad.reshape(-1) for p in task.net.parameters()])


def test_compacted_backward_equals_masked_full_batch():
    task = TinyTask()
    batch = task.act()
    sel = Method("dgk", gate="topk", keep_rate=0.25).select(batch.advantage, batch.logp)
    learned = learn_step(task, batch, sel)
    assert learned.backward_rows == learned.backward_units == learned.kept_units == 16
    assert learned.optimizer_steps == 1 and task.seen_rows == [16]  # only kept rows were re-run
    compacted = grads(task)
    # the same loss on the full batch, with the skipped rows masked out
    logp_full = task.net(task.x).log_softmax(-1).gather(-1, batch.data["action"][:, None])[:, 0]
    task.learn(-(sel.coef * sel.keep * logp_full).sum() / 64)
    assert torch.allclose(compacted, grads(task), atol=1e-6)


def test_ungated_uses_the_acting_forward_pass():
    task = TinyTask()
    batch = task.act_with_grad()
    sel = Method("dg").select(batch.advantage, batch.logp)
    assert learn_step(task, batch, sel) == Learned(64, 64, 64, 1, 0)
    assert task.seen_rows == []  # no second forward pass for ungated methods


def test_nothing_kept_means_no_backward():
    task = TinyTask()
    batch = task.act()
    sel = Method("dgk", gate="price", price=1e9).select(batch.advantage, batch.logp)
    assert learn_step(task, batch, sel) == Learned()
    assert all(p.grad is None for p in task.net.parameters())


def run(tmp_path, *overrides):
    cfg = make_cfg("progress=false", *overrides)
    return run_experiment(cfg, tmp_path), tmp_path


def rows(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_infinite_price_takes_no_step_and_counts_it(tmp_path):
    summary, out = run(tmp_path, "task=bandit", "task.steps=20", "price=1e9")
    assert summary["backward_samples"] == 0 and summary["optimizer_steps"] == 0
    assert summary["forward_samples"] == 2000 and summary["cost"] == 2000
    assert summary["final_quality"] == pytest.approx(0.99)  # uniform over 100 arms: untouched
    assert rows(out)[-1]["misalignment"] is None


def test_accounting_and_files(tmp_path):
    summary, out = run(tmp_path, "task=bandit", "task.steps=30", "method=dgk", "keep_rate=0.1", "cost_ratio=4")
    r = rows(out)
    assert [x["step"] for x in r] == [10, 20, 30]
    assert summary["status"] == "complete" and summary["gate"] == "topk"
    assert summary["backward_samples"] == 300 and summary["forward_samples"] == 3000
    assert summary["cost"] == 3000 + 4 * 300
    assert summary["cost_with_reforward"] == 3000 + 300 + 4 * 300
    assert all(x["keep_rate"] == pytest.approx(0.1) for x in r)
    for key in ("time_act", "time_screen", "time_learn", "time_eval"):
        assert r[-1][key] >= 0
    assert json.loads((out / "summary.json").read_text())["backward_samples"] == 300


def test_ungated_pays_no_reforward(tmp_path):
    summary, _ = run(tmp_path, "task=bandit", "task.steps=10", "method=pg")
    assert summary["reforward_samples"] == 0 and summary["backward_samples"] == 1000
    assert summary["gate"] == "none" and summary["price"] is None


def strip_times(r):
    return [{k: v for k, v in row.items() if not k.startswith("time_")} for row in r]


@pytest.mark.parametrize("task", ["bandit", "bandit_multi"])
def test_same_seed_same_metrics(tmp_path, task):
    a = strip_times(rows(run(tmp_path / "a", f"task={task}", "task.steps=40", "seed=3")[1]))
    b = strip_times(rows(run(tmp_path / "b", f"task={task}", "task.steps=40", "seed=3")[1]))
    c = strip_times(rows(run(tmp_path / "c", f"task={task}", "task.steps=40", "seed=4")[1]))
    assert a == b and a != c


@needs_mnist
def test_mnist_same_seed_same_metrics_and_data_notice(tmp_path):
    # the folder with the test pair only: the 8k/2k fallback, which must say so
    args = ("task=mnist", "task.steps=40", "task.eval_every=20", "keep_rate=0.1", "seed=1",
            f"task.data_root={SHARED_MNIST}")
    sa, pa = run(tmp_path / "a", *args)
    sb, pb = run(tmp_path / "b", *args)
    assert strip_times(rows(pa)) == strip_times(rows(pb))
    assert sa["data_source"] == "test-split" and "test split" in sa["data_note"]
    assert sa["train_images"] == 8000 and sa["eval_images"] == 2000


@pytest.mark.parametrize("override, message", [
    ("price=-1", "price=-1.0 is out of range: it must be a finite number >= 0"),
    ("keep_rate=0", "keep_rate=0.0 is out of range: it must be a finite number in (0, 1]"),
    ("keep_rate=1.5", "keep_rate=1.5 is out of range"),
    ("method.eta=-0.1", "method.eta=-0.1 is out of range"),
    ("cost_ratio=-2", "cost_ratio=-2.0 is out of range"),
    ("device.name=cuda", "use device=cpu"),
    ("device.name=tpu", "unknown device"),
    ("task.steps=0", "task.steps=0 is out of range: it must be in"),
    ("method.gate=topk", "needs keep_rate"),
])
def test_bad_input_is_a_user_error(tmp_path, override, message):
    if override.startswith("device.name=cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(tmp_path, "task=bandit", override)
    assert not (tmp_path / "summary.json").exists()


def test_price_and_keep_rate_together_is_an_error(tmp_path):
    with pytest.raises(UserError, match="keep_rate"):
        run(tmp_path, "task=bandit", "method.gate=price", "keep_rate=0.1")


def test_missing_data_root_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="data_root"):
        run(tmp_path, "task=mnist", f"task.data_root={tmp_path / 'nope'}")


@pytest.mark.parametrize("task", ["bandit", pytest.param("mnist", marks=needs_mnist)])
def test_bf16_speculative_screening_runs_and_learns(tmp_path, task):
    s, out = run(tmp_path, f"task={task}", "task.steps=100", "task.eval_every=50", "keep_rate=0.1",
                 "screen_precision=bf16", "device.force_bf16=true")  # forced: CI's CPU may lack bf16
    assert s["status"] == "complete" and s["backward_samples"] == 100 * 10
    assert s["final_quality"] < (0.99 if task == "bandit" else 0.5)


def test_bf16_screen_is_refused_on_a_cpu_without_bf16_unless_forced(tmp_path, monkeypatch):
    """Without bf16 instructions the bf16 screen is slower than fp32: one line naming the fix,
    no run folder content; device.force_bf16=true runs it anyway."""
    import kondo_bench.runsetup as runsetup

    monkeypatch.setattr(runsetup, "cpu_has_bf16", lambda: False)
    args = ("task=bandit", "task.steps=4", "task.eval_every=2", "keep_rate=0.1", "device=cpu", "screen_precision=bf16")
    with pytest.raises(UserError, match="device.force_bf16=true") as e:
        run(tmp_path / "refused", *args)
    assert "\n" not in str(e.value) and not (tmp_path / "refused" / "summary.json").exists()
    s, _ = run(tmp_path / "forced", *args, "device.force_bf16=true")
    assert s["status"] == "complete"
    monkeypatch.setattr(runsetup, "cpu_has_bf16", lambda: True)  # a CPU with bf16: no refusal, no key needed
    assert run(tmp_path / "native", *args)[0]["status"] == "complete"


def test_bad_screen_precision(tmp_path):
    with pytest.raises(UserError, match="screen_precision"):
        run(tmp_path, "task=bandit", "screen_precision=fp8")


def test_a_rounded_keep_rate_is_named_once_in_the_log(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        summary, _ = run(tmp_path, "task=bandit", "task.steps=5", "task.eval_every=5", "method=dgk", "keep_rate=0.003")
    notes = [r.message for r in caplog.records if "effective keep rate" in r.message]
    assert summary["status"] == "complete" and len(notes) == 1 and "= 1 of the 100" in notes[0]
    assert summary["backward_samples"] == 5  # one kept pull per step, as the note says
