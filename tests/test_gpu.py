"""CUDA correctness: skipped where no GPU is visible (CI never has one)."""

import pytest
import torch

from conftest import make_cfg, needs_mnist
from kondo_bench.train import run_experiment

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("task", ["bandit", "reversal", pytest.param("mnist", marks=needs_mnist)])
def test_gated_run_on_cuda(tmp_path, task):
    s = run_experiment(make_cfg(f"task={task}", "device=cuda", "task.steps=20", "task.eval_every=10",
                                "keep_rate=0.1", "progress=false"), tmp_path)
    assert s["status"] == "complete" and s["device"].startswith("cuda")
    assert s["time_learn"] > 0


def test_cuda_and_cpu_compaction_agree():
    from test_train import TinyTask
    from kondo_bench.methods import Method
    from kondo_bench.train import learn_step
    task = TinyTask()
    batch = task.act()
    sel = Method("dgk", gate="topk", keep_rate=0.25).select(batch.advantage, batch.logp)
    learn_step(task, batch, sel)
    cpu = torch.cat([p.grad.reshape(-1) for p in task.net.parameters()])
    task.net.cuda()
    task.x = task.x.cuda()
    batch.data["action"] = batch.data["action"].cuda()
    batch.logp = batch.logp.cuda()
    sel.coef, sel.keep = sel.coef.cuda(), sel.keep.cuda()
    learn_step(task, batch, sel)
    gpu = torch.cat([p.grad.reshape(-1) for p in task.net.parameters()]).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-5)


@pytest.mark.slow
def test_default_reversal_run_on_cuda(tmp_path):
    s = run_experiment(make_cfg("task=reversal", "method=dg", "device=cuda", "progress=false"), tmp_path)
    assert s["final_quality"] < 0.05
