"""Networks as a config axis: `task.model` names a network by `_target_`, so a user swaps the
policy from the command line or their own YAML without writing a task.

    kondo-bench run task=mnist 'task.model={_target_: kondo_bench.models.MLP, hidden: [256]}'
    kondo-bench run task=reversal 'task.model={_target_: mypkg.nets.MyDecoder, width: 96}'

`task.model: null` (the default) builds the task's own network from its keys (task.hidden,
task.d_model, ...), as before. The task hands the sizes only it knows (MNIST: in_features=784,
out_features=10; reversal: vocab, max_len) as keyword arguments; the YAML gives the rest.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .errors import UserError


class MLP(nn.Sequential):
    """in_features -> hidden... -> out_features, ReLU between layers (MNIST's policy)."""

    def __init__(self, in_features: int, out_features: int, hidden: list[int] = (100, 100)):
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)


def build_model(spec, default: Callable[[], nn.Module], **given) -> nn.Module:
    """The network `task.model` names (its `_target_` called with its keys and `given`), else `default()`."""
    if spec is None:
        return default()
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        net = instantiate(spec, **given)
    except InstantiationException as e:
        raise UserError(f"task.model: cannot build {spec.get('_target_')}: {str(e).splitlines()[0]}") from None
    if not isinstance(net, nn.Module):
        raise UserError(f"task.model._target_={spec.get('_target_')} built a {type(net).__name__}, not a torch.nn.Module")
    return net
