"""The policy: any transformers AutoModelForCausalLM, its sampler and its teacher-forced log pi.

- `build_model`: a Qwen2, Llama or GPT-2 built from a config (random init; dropout off), or a
  local pretrained folder. Never a download: a missing folder, or one without a model, is one
  line naming the fix.
- `sample`: batched sampling with the model's KV cache over left-padded prompts; it returns the
  completion, the log pi of each sampled token *from the sampling pass itself* (the gate screens
  on these: no extra forward), and which positions exist (after the end-of-sequence token:
  padding, no unit).
- `completion_logp`: the learning forward with autograd over prompt + completion, ending at a
  given completion position (right-trimming: nothing after the last kept token is computed).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import torch

from ...errors import UserError
from ...reliability import check_stop


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("task=lm needs transformers: pip install 'kondo-bench[lm]' (make setup installs it)") from None
    return transformers


def model_config(family: str, vocab: int, hidden: int, layers: int, heads: int, ffn: int, positions: int,
                 pad_id: int, eos_id: int):
    """A transformers config of a small model of the family, dropout off (the sampler's log pi and
    the learning forward's must be the same numbers)."""
    tf = require_transformers()
    ids = dict(vocab_size=vocab, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=eos_id)
    if family == "gpt2":
        return tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_inner=ffn, n_positions=positions,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    cls = {"qwen2": tf.Qwen2Config, "llama": tf.LlamaConfig}[family]
    return cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
               intermediate_size=ffn, max_position_embeddings=positions, tie_word_embeddings=True,
               attention_dropout=0.0, **ids)


def build_model(mcfg, vocab: int, pad_id: int, eos_id: int, device: torch.device):
    """task.model: a local pretrained folder (path), else a fresh model of the family."""
    tf = require_transformers()
    if mcfg.path is not None:
        path = Path(mcfg.path)
        if not path.is_dir():
            raise UserError(f"task.model.path={mcfg.path} does not exist; give a local folder holding a model's "
                            "config.json and weights (nothing is downloaded)")
        if not (path / "config.json").is_file():
            raise UserError(f"task.model.path={mcfg.path} holds no model (no config.json); give the folder that "
                            "save_pretrained wrote")
        try:
            model = tf.AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise UserError(f"task.model.path={mcfg.path}: transformers cannot load a causal LM from it "
                            f"({str(e).splitlines()[0][:200]})") from None
    else:
        config = model_config(mcfg.family, vocab, mcfg.hidden_size, mcfg.layers, mcfg.heads, mcfg.intermediate_size,
                              mcfg.max_positions, pad_id, eos_id)
        model = tf.AutoModelForCausalLM.from_config(config)
    # eval mode for good: no dropout, so the sampler's log pi is the learning forward's
    return model.to(device).eval()


@functools.cache
def _cache_key(cls) -> str:
    """The forward's KV-cache argument: `cache` from transformers 5.2x, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def forward_cached(model, cache, **kwargs):
    """One forward that reads and extends the KV cache; returns (last position's logits, the cache)."""
    if cache is not None:
        kwargs[_cache_key(type(model))] = cache
    out = model(use_cache=True, **kwargs)
    cache = out.get("cache", None) or out.get("past_key_values", None)
    return out.logits[:, -1], cache


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: the first real token is position 0."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample(model, prompt: torch.Tensor, prompt_mask: torch.Tensor, max_new: int, eos_id: int, pad_id: int,
           greedy: bool = False, generator: torch.Generator | None = None):
    """Complete left-padded prompts [B, P] with up to max_new tokens each, at temperature 1.

    Returns (completion [B, T], log pi of each sampled token [B, T] from this very pass, valid [B, T]),
    T = max_new: a row's tokens up to and including its end-of-sequence token are valid; after
    it come pad tokens with log pi 0. Stops early once every row has ended."""
    b, device = prompt.shape[0], prompt.device
    mask = prompt_mask.long()
    logits, cache = forward_cached(model, None, input_ids=prompt, attention_mask=mask, position_ids=positions(mask),
                                   logits_to_keep=1)
    nxt = mask.sum(-1, keepdim=True)  # the next token's position id
    done = torch.zeros(b, dtype=torch.bool, device=device)
    tokens, logps, valid = [], [], []
    for t in range(max_new):
        check_stop()  # a long completion is many passes: Ctrl-C need not wait for them all
        lp = logits.float().log_softmax(-1)
        if greedy:
            a = lp.argmax(-1)
        else:  # argmax_i pi_i / E_i with E_i ~ Exp(1) is an exact draw from pi (Gumbel-max in disguise)
            a = (lp.exp() / torch.empty_like(lp).exponential_(generator=generator)).argmax(-1)
        a = torch.where(done, torch.full_like(a, pad_id), a)
        tokens.append(a)
        logps.append(torch.where(done, torch.zeros_like(lp[:, 0]), lp.gather(-1, a[:, None])[:, 0]))
        valid.append(~done)
        done = done | (a == eos_id)
        if t + 1 == max_new or bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        logits, cache = forward_cached(model, cache, input_ids=a[:, None], attention_mask=mask, position_ids=nxt + t)
    pad = max_new - len(tokens)
    completion, logp, valid = torch.stack(tokens, 1), torch.stack(logps, 1), torch.stack(valid, 1)
    if pad:  # every row ended early: the rest is padding
        completion = torch.cat([completion, completion.new_full((b, pad), pad_id)], 1)
        logp = torch.cat([logp, logp.new_zeros((b, pad))], 1)
        valid = torch.cat([valid, valid.new_zeros((b, pad))], 1)
    return completion, logp, valid


def completion_logp(model, prompt: torch.Tensor, prompt_mask: torch.Tensor, completion: torch.Tensor,
                    valid: torch.Tensor, upto: int) -> torch.Tensor:
    """log pi(completion_t | prompt, completion_<t) for t < upto, with autograd: [R, upto].

    One forward over the prompt and the first upto - 1 completion tokens (the token at upto - 1
    is predicted, never read); the lm head runs on the last upto positions only. Prompt columns
    that are padding in every row are dropped first (a compacted batch's prompts may all be
    shorter than the full batch's)."""
    first = int(prompt_mask.any(0).long().argmax()) if prompt_mask.any() else 0
    prompt, prompt_mask = prompt[:, first:], prompt_mask[:, first:]
    ids = torch.cat([prompt, completion[:, :upto - 1]], 1)
    mask = torch.cat([prompt_mask.long(), valid[:, :upto - 1].long()], 1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=upto).logits
    return logits.float().log_softmax(-1).gather(-1, completion[:, :upto, None])[..., 0]
