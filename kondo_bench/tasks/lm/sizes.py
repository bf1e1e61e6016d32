"""task=lm's memory estimate, from the config alone (kondo_bench/memory.py adds the terms up).

No transformers import and no weights read: a model built from a config has the sizes its
keys say; a local pretrained folder's sizes come from its config.json. Like every task's
estimate, the terms are the tensors that grow with the config, so the total is a lower bound:
a run refused here could not have run.
"""

from __future__ import annotations

import json
from pathlib import Path

from .problems import answer_length
from .tokenizer import ALPHABET

CHAR_VOCAB = len(dict.fromkeys(ALPHABET)) + 3  # the built-in tokenizer: the alphabet, <pad>, <eos>, <unk>


def model_sizes(m) -> dict | None:
    """hidden, layers, ffn, kv (the keys' and values' width), vocab, gated (three FFN matrices,
    not two) and positions (learned position embeddings) of task.model; None when a pretrained
    folder's config.json cannot be read (building the model then refuses in one line)."""
    if m.path is None:
        gpt2 = m.family == "gpt2"
        return {"hidden": m.hidden_size, "layers": m.layers, "ffn": m.intermediate_size, "kv": m.hidden_size,
                "vocab": CHAR_VOCAB, "gated": not gpt2, "positions": m.max_positions if gpt2 else 0}
    try:
        c = json.loads((Path(m.path) / "config.json").read_text())
        hidden = int(c.get("hidden_size") or c.get("n_embd") or c["d_model"])
        heads = int(c.get("num_attention_heads") or c.get("n_head") or 1)
        return {"hidden": hidden, "layers": int(c.get("num_hidden_layers") or c["n_layer"]),
                "ffn": int(c.get("intermediate_size") or c.get("n_inner") or 4 * hidden),
                "kv": hidden * int(c.get("num_key_value_heads") or heads) // heads,
                "vocab": int(c.get("vocab_size") or CHAR_VOCAB), "gated": "intermediate_size" in c,
                "positions": int(c.get("n_positions") or 0)}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def memory_terms(cfg) -> list[tuple[str | None, float, str]]:
    """(key to lower, bytes, what) of task=lm's big tensors; cfg is the full config."""
    t = cfg.task
    s = model_sizes(t.model)
    if s is None:
        return []
    act = 2 if t.precision == "bf16" else 4  # activations and KV cache under bf16 autocast; weights stay fp32
    prompt = 2 * t.length + 2 if t.problem == "addition" else t.length + 1
    completion = t.max_completion or answer_length(t.problem, t.length)
    length, (d, n, ffn, kv, v) = prompt + completion, (s[k] for k in ("hidden", "layers", "ffn", "kv", "vocab"))
    weights = v * d + s["positions"] * d + n * (2 * d * d + 2 * d * kv + (3 if s["gated"] else 2) * d * ffn)
    # per position and block, kept for the backward pass: norms, q, k, v, the attention output,
    # the residuals, the feed-forward's inputs and activations (attention scores are not kept: SDPA)
    per_position = n * (8 * d + 2 * kv + (3 if s["gated"] else 2) * ffn)
    cache = n * 2 * length * kv * act  # one row's keys and values, every block
    b, e = t.batch_size, t.eval_prompts
    return [("task.model.hidden_size" if t.model.path is None else None, weights * 4 * 4, "parameters"),
            ("task.batch_size", b * length * per_position * act, "the learn step's activations"),
            ("task.batch_size", b * completion * v * 4 * 3, "the learn step's logits"),
            ("task.batch_size", b * cache, "the sampler's KV cache"),
            ("task.eval_prompts", e * (cache + v * 4 * 3), "an evaluation's KV cache and distributions")]
