"""Networks as a config axis: task.model names one by _target_; null keeps the task's own."""

import pytest
import torch

from conftest import make_cfg, needs_mnist, SHARED_MNIST
from kondo_bench.errors import UserError
from kondo_bench.tasks import make_task
from kondo_bench.validation import validate


def test_reversal_builds_the_network_task_model_names():
    own = make_task(make_cfg("task=reversal"), torch.device("cpu")).net
    cfg = make_cfg("task=reversal", "task.model={_target_: kondo_bench.tasks.reversal.Transformer, d_model: 32, "
                   "layers: 1, heads: 2, ffn: 64}")
    validate(cfg)
    net = make_task(cfg, torch.device("cpu")).net
    assert net.tok.embedding_dim == 32 and len(net.blocks) == 1 and net.tok.num_embeddings == 2
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in own.parameters())


def test_a_task_key_the_named_network_ignores_is_refused():
    with pytest.raises(UserError, match="task.layers=2 is ignored with task.model set"):
        validate(make_cfg("task=reversal", "task.layers=2", "task.model={_target_: kondo_bench.tasks.reversal.Transformer}"))


def test_a_target_that_is_not_a_network_is_one_line():
    cfg = make_cfg("task=reversal", "task.model={_target_: collections.OrderedDict}")
    with pytest.raises(UserError, match="not a torch.nn.Module"):
        make_task(cfg, torch.device("cpu"))


@needs_mnist
def test_mnist_mlp_by_target():
    cfg = make_cfg("task=mnist", f"task.data_root={SHARED_MNIST}", "task.model={_target_: kondo_bench.models.MLP, hidden: [32]}")
    validate(cfg)
    net = make_task(cfg, torch.device("cpu")).net
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [32, 10]
