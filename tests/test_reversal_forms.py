"""The reversal transformer's two forms: ours (PyTorch's initialisation, a final LayerNorm) and
the official code's (task.init=flax, task.final_ln=false)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_cfg
from kondo_bench.errors import UserError
from kondo_bench.tasks import make_task
from kondo_bench.tasks.reversal import Transformer
from kondo_bench.train import run_experiment
from kondo_bench.validation import validate


pytestmark = pytest.mark.usefixtures("one_thread")


def weights_by_kind(net: Transformer) -> dict[str, list[torch.Tensor]]:
    """The weights of each kind whose initial std Flax fixes: embeddings, and linear layers by fan-in."""
    out: dict[str, list[torch.Tensor]] = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.Embedding):
            out.setdefault("embedding", []).append(m.weight)
        elif isinstance(m, nn.Linear):
            out.setdefault(f"linear fan_in {m.in_features}", []).append(m.weight)
    return out


def test_flax_init_gives_flaxs_std_for_each_kind_of_weight():
    """Embeddings N(0, 1 / d_model); every linear weight lecun_normal: std 1 / sqrt(fan_in),
    truncated at 2 std (as the official code's nn.Embed, nn.Dense and attention projections)."""
    torch.manual_seed(0)
    d, ffn = 256, 512  # wide enough that each kind's sample std is within 2 % of its target
    net = Transformer(vocab=64, max_len=64, d_model=d, layers=2, heads=4, ffn=ffn, init="flax")
    kinds = weights_by_kind(net)
    assert set(kinds) == {"embedding", f"linear fan_in {d}", f"linear fan_in {ffn}"}
    for kind, ws in kinds.items():
        w = torch.cat([x.flatten() for x in ws])
        fan_in = d if kind == "embedding" else int(kind.rsplit(" ", 1)[1])
        assert w.std().item() == pytest.approx(fan_in ** -0.5, rel=0.02), kind
        if kind != "embedding":  # truncated at 2 std of the untruncated normal: 2 / 0.8796 / sqrt(fan_in)
            assert w.abs().max().item() <= 2 / 0.87962566103423978 * fan_in ** -0.5 + 1e-6, kind
            assert w.abs().max().item() > 0.9 * 2 / 0.87962566103423978 * fan_in ** -0.5, kind
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in net.modules() if isinstance(m, nn.LayerNorm))


def test_torch_init_is_pytorchs_default_unchanged():
    """The default form draws exactly what it drew before the choice existed (same seed, same weights)."""
    torch.manual_seed(0)
    a = Transformer(vocab=2, max_len=20)
    torch.manual_seed(0)
    b = Transformer(vocab=2, max_len=20, init="torch", final_ln=True)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.tok.weight.std().item() > 0.7  # N(0, 1), not Flax's 1 / sqrt(64)
    w = a.blocks[0].ffn[0].weight  # U(+-1 / sqrt(fan_in)): std 1 / sqrt(3 fan_in)
    assert w.std().item() == pytest.approx((3 * 64) ** -0.5, rel=0.05)


def test_final_ln_false_removes_the_layer():
    with_ln = Transformer(vocab=2, max_len=20)
    without = Transformer(vocab=2, max_len=20, final_ln=False)
    assert isinstance(with_ln.ln, nn.LayerNorm) and isinstance(without.ln, nn.Identity)
    assert sum(isinstance(m, nn.LayerNorm) for m in without.modules()) == 2 * len(without.blocks)  # the blocks' own
    assert "ln.weight" in with_ln.state_dict() and "ln.weight" not in without.state_dict()
    x = torch.zeros(1, 64)
    with torch.no_grad():  # the output layer reads the residual stream itself
        assert torch.equal(without.head(without.ln(x + 3)), without.head(x + 3))


def test_the_task_keys_build_the_official_form():
    net = make_task(make_cfg("task=reversal", "task.init=flax", "task.final_ln=false"), torch.device("cpu")).net
    assert isinstance(net.ln, nn.Identity) and net.tok.weight.std().item() < 0.3
    with pytest.raises(Exception, match="init"):  # an unknown init is refused by the schema
        make_cfg("task=reversal", "task.init=jax")
    with pytest.raises(UserError, match="unknown init 'jax'"):
        Transformer(vocab=2, max_len=20, init="jax")


def test_task_model_can_name_the_official_form_but_not_beside_the_task_keys():
    cfg = make_cfg("task=reversal", "task.model={_target_: kondo_bench.tasks.reversal.Transformer, init: flax, "
                   "final_ln: false}")
    validate(cfg)
    assert isinstance(make_task(cfg, torch.device("cpu")).net.ln, nn.Identity)
    with pytest.raises(UserError, match="task.final_ln=False is ignored with task.model set"):
        validate(make_cfg("task=reversal", "task.final_ln=false",
                          "task.model={_target_: kondo_bench.tasks.reversal.Transformer}"))


@pytest.mark.parametrize("method", ["pg", "dg"])
def test_a_run_of_the_official_form_works_end_to_end(tmp_path, method):
    cfg = make_cfg("task=reversal", f"method={method}", "task.init=flax", "task.final_ln=false", "task.horizon=4",
                   "task.steps=6", "task.eval_every=3", "task.eval_prompts=20", "progress=false", "logger=none")
    summary = run_experiment(cfg, tmp_path)
    assert summary["status"] == "complete" and summary["steps"] == 6
    assert summary["result_config"]["task"]["init"] == "flax" and summary["result_config"]["task"]["final_ln"] is False
    assert 0 <= summary["final_quality"] <= 1
    assert run_experiment(cfg, tmp_path)["steps"] == 6  # a finished run of the same form is recognised


EGG = Path(__file__).parent / "data" / "egg_transformer.npz"  # scripts/egg_compare.py --fixture wrote it


def load_official_weights(net: Transformer, z) -> None:
    """The official (Flax) network's parameters into ours: Dense kernels are [in, out], torch's
    weights [out, in]; the attention's query, key and value kernels [D, heads, D / heads] are
    our fused qkv's three blocks, and its out kernel [heads, D / heads, D] our proj."""
    t = lambda k: torch.tensor(z[k])  # noqa: E731
    d = net.tok.embedding_dim
    sd = {"tok.weight": t("token_emb.embedding"), "pos.weight": t("pos_emb.embedding"), "head.weight": t("output.kernel").T}
    for i in range(len(net.blocks)):
        a, b = f"layer_{i}.", f"blocks.{i}."
        qkv = [t(f"{a}self_attn.{n}.kernel").reshape(d, d).T for n in ("query", "key", "value")]
        sd.update({b + "ln1.weight": t(a + "ln_attn.scale"), b + "ln2.weight": t(a + "ln_ff.scale"),
                   b + "qkv.weight": torch.cat(qkv), b + "proj.weight": t(a + "self_attn.out.kernel").reshape(d, d).T,
                   b + "ffn.0.weight": t(a + "ff_up.kernel").T, b + "ffn.2.weight": t(a + "ff_down.kernel").T})
    left = net.load_state_dict(sd, strict=False)  # ours has a final LayerNorm the official network lacks
    assert not left.unexpected_keys and left.missing_keys == ([] if isinstance(net.ln, nn.Identity) else ["ln.weight"])


def test_the_official_form_computes_the_official_networks_logits():
    """Given the official code's initial weights (its Flax transformer: 2 layers, 2 heads, width
    16, vocab 3), the official form computes its logits; ours, with its final LayerNorm, does not."""
    z = np.load(EGG)
    tokens, want = torch.tensor(z["tokens"]).long(), torch.tensor(z["logits"])
    net = Transformer(vocab=3, max_len=8, d_model=16, layers=2, heads=2, ffn=32, init="flax", final_ln=False)
    load_official_weights(net, z)
    with torch.no_grad():
        assert (net(tokens)[0] - want).abs().max() < 2e-3  # LayerNorm's epsilon: 1e-5 here, 1e-6 in Flax
        for m in net.modules():
            if isinstance(m, nn.LayerNorm):
                m.eps = 1e-6
        assert (net(tokens)[0] - want).abs().max() < 1e-5
        ours = Transformer(vocab=3, max_len=8, d_model=16, layers=2, heads=2, ffn=32)
        load_official_weights(ours, z)  # the same weights; its final LayerNorm's scale stays 1
        assert (ours(tokens)[0] - want).abs().max() > 0.1
