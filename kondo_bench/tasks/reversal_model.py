"""The reversal task's policy: a decoder-only transformer, its teacher-forced pass over prompt
and answer, and its sampler with a KV cache.

As in the official code: learned token and position embeddings, pre-LayerNorm blocks without
biases, causal self-attention, a ReLU FFN. The input is the prompt followed by the answer;
answer token t is predicted at position H - 1 + t, so the last answer token is never an input
(2H - 1 positions). Every pass computes each distinct prompt's positions once and shares their
keys and values among its samples. The task itself (rewards, evaluation) is `reversal.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..stopping import check_stop


class Block(nn.Module):
    """Pre-LayerNorm transformer block, no biases: x + attn(ln(x)), then x + ffn(ln(x))."""

    def __init__(self, d_model: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model, bias=False)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln2 = nn.LayerNorm(d_model, bias=False)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn, bias=False), nn.ReLU(), nn.Linear(ffn, d_model, bias=False))

    def forward(self, x: torch.Tensor, context: tuple | None = None,
                cache: tuple | None = None, pos: int = 0) -> tuple[torch.Tensor, tuple]:
        """x [B, L, D] attends causally to itself and fully to earlier positions, held either in
        `context`, the keys and values [B, heads, C, D / heads] of positions 0 .. C - 1 (the
        teacher-forced pass), or in `cache`, preallocated key and value buffers [B, heads, Lmax,
        D / heads] whose first `pos` positions are filled: x's keys and values are written in
        place at pos .. pos + L - 1 (the sampler: no copy of the growing prefix per step).
        Returns x and the keys and values of every position so far."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            cache[0][:, :, pos:pos + n] = k
            cache[1][:, :, pos:pos + n] = v
            k, v = cache[0][:, :, :pos + n], cache[1][:, :, :pos + n]
        elif context is not None:
            k, v = torch.cat([context[0], k], 2), torch.cat([context[1], v], 2)
        if n == 1 and cache is not None:  # a decode step, one query per row and head: two small
            # matmuls, about 0.7x the time of torch's fused CPU attention at this size
            y = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(-1) @ v
        elif k.shape[2] == n:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = None
            if n > 1:  # new position i sees every earlier position and new positions <= i
                mask = torch.ones(n, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - n)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.ffn(self.ln2(x)), (k, v)


class Transformer(nn.Module):
    """Decoder-only: learned token and position embeddings, pre-LN blocks, a final LayerNorm."""

    def __init__(self, vocab: int, max_len: int, d_model: int = 64, layers: int = 3, heads: int = 4, ffn: int = 128):
        super().__init__()
        if d_model % heads:
            raise UserError(f"task.d_model ({d_model}) must be divisible by task.heads ({heads})")
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, ffn) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model, bias=False)
        self.head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, tokens: torch.Tensor, start: int = 0, context: list | None = None,
                cache: list | None = None):
        """Logits [B, L, M] for tokens [B, L] at positions start .. start + L - 1, which follow
        the per-layer `context` (keys, values) of positions 0 .. start - 1, or the per-layer
        preallocated `cache` (see Block.forward); and the keys and values so far."""
        x = self.tok(tokens) + self.pos.weight[start:start + tokens.shape[1]]
        kv = []
        for i, block in enumerate(self.blocks):
            x, c = block(x, None if context is None else context[i], None if cache is None else cache[i], start)
            kv.append(c)
        return self.head(self.ln(x)), kv

    def new_cache(self, rows: int, length: int, like: torch.Tensor) -> list:
        """Empty key and value buffers [rows, heads, length, d_model / heads] per layer."""
        block = self.blocks[0]
        shape = (rows, block.heads, length, block.qkv.in_features // block.heads)
        return [(like.new_empty(shape), like.new_empty(shape)) for _ in self.blocks]


def select_context(kv: list, rows: torch.Tensor) -> list:
    """The per-layer keys and values of the given rows (rows may repeat: a shared prompt)."""
    return [(k[rows], v[rows]) for k, v in kv]


def answer_dist(net: Transformer, prompt: torch.Tensor, answer: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log pi(. | prompt, answer_<t) at each answer position: [B, H, M], one
    forward pass.

    `prompt` [P, H] holds each distinct prompt once and `group` [B] says which prompt each
    answer row [B, H] belongs to: the prompt positions are computed once per prompt and
    their keys and values shared by its samples (10 samples per prompt: about half the work).
    """
    h = prompt.shape[1]
    logits, kv = net(prompt)
    logits = logits[group, -1:]  # the last prompt position predicts answer token 0
    if h > 1:  # the answer tokens but the last are inputs too, at positions H .. 2H - 2
        rest, _ = net(answer[:, :-1], h, select_context(kv, group))
        logits = torch.cat([logits, rest], 1)
    return logits.float().log_softmax(-1)


def answer_logp(net: Transformer, prompt: torch.Tensor, answer: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log pi(answer_t | prompt, answer_<t): [B, H] (see answer_dist)."""
    return answer_dist(net, prompt, answer, group).gather(-1, answer[..., None])[..., 0]


@torch.no_grad()
def sample(net: Transformer, prompt: torch.Tensor, samples: int = 1, greedy: bool = False,
           generator: torch.Generator | None = None, full: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Write H answer tokens, `samples` per prompt, with a KV cache: one pass over the distinct
    prompts, then one position per step for all rows at once. Rows are prompt-major.
    Returns (answer [P * samples, H], log pi of each answer token [P * samples, H]); with
    full=True, the whole log pi(. | prompt, answer_<t) at each position instead: [P * samples, H, M]."""
    p, h = prompt.shape
    logits, kv = net(prompt)
    # the decode steps write into preallocated buffers: torch.cat of the growing prefix at
    # every step and layer was most of the sampler's time (a copy of every earlier key)
    cache = net.new_cache(p * samples, 2 * h - 1, kv[0][0])
    for (k_buf, v_buf), (k, v) in zip(cache, kv):  # each prompt's keys, shared by its samples
        k_buf.view(p, samples, *k_buf.shape[1:])[:, :, :, :h] = k[:, None]
        v_buf.view(p, samples, *v_buf.shape[1:])[:, :, :, :h] = v[:, None]
    logits = logits[:, -1].repeat_interleave(samples, 0)
    answer, logp = [], []
    for t in range(h):
        check_stop()  # a long answer (large H) is many passes: Ctrl-C need not wait for them all
        lp = logits.float().log_softmax(-1)
        if greedy:
            a = lp.argmax(-1)
        else:  # argmax_i pi_i / E_i with E_i ~ Exp(1) is an exact draw from pi (Gumbel-max in disguise)
            noise = torch.empty_like(lp).exponential_(generator=generator)
            a = (lp.exp() / noise).argmax(-1)
        answer.append(a)
        logp.append(lp)
        if t + 1 < h:
            logits, _ = net(a[:, None], h + t, cache=cache)
            logits = logits[:, 0]
    answer, logp = torch.stack(answer, 1), torch.stack(logp, 1)
    return answer, logp if full else logp.gather(-1, answer[..., None])[..., 0]

