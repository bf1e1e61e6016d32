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

from .reversal_config import Init
from ..errors import UserError
from ..stopping import check_stop

# Flax's truncated normal keeps |x| < 2 sigma and rescales so the std is what was asked for:
# 0.8796 is the std of a unit normal truncated at +-2.
TRUNCATED_STD = 0.87962566103423978


def flax_init_(net: nn.Module) -> None:
    """Re-initialise a network's weights in place as Flax's defaults do (the official code's
    form, `task.init=flax`): embeddings N(0, 1 / width), every linear weight lecun_normal
    (std 1 / sqrt(fan_in), truncated at 2 std), LayerNorm scales 1."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, m.embedding_dim ** -0.5)
            elif isinstance(m, nn.Linear):
                std = m.in_features ** -0.5 / TRUNCATED_STD
                nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm) and m.weight is not None:
                m.weight.fill_(1.0)


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

    def forward(self, x: torch.Tensor, context: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """x [B, L, D] attends causally to itself and fully to earlier positions, whose keys and
        values [B, heads, C, D / heads] (positions 0 .. C - 1) are `context`. Returns x and the
        keys and values of every position so far. (The sampler's decode steps: `Decoder`.)"""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if context is not None:
            k, v = torch.cat([context[0], k], 2), torch.cat([context[1], v], 2)
        if k.shape[2] == n:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = None
            if n > 1:  # new position i sees every earlier position and new positions <= i
                mask = torch.ones(n, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - n)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.ffn(self.ln2(x)), (k, v)


class Transformer(nn.Module):
    """Decoder-only: learned token and position embeddings, pre-LN blocks, a final LayerNorm
    (final_ln=False: none, as in the official code); PyTorch's or Flax's initialisation
    (init="flax": the official code's; with final_ln=False, its network)."""

    def __init__(self, vocab: int, max_len: int, d_model: int = 64, layers: int = 3, heads: int = 4, ffn: int = 128,
                 init: str = "torch", final_ln: bool = True):
        super().__init__()
        if d_model % heads:
            raise UserError(f"task.d_model ({d_model}) must be divisible by task.heads ({heads})")
        try:
            init = Init(init)
        except ValueError:
            raise UserError(f"unknown init '{init}': use one of {', '.join(i.value for i in Init)}") from None
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, ffn) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model, bias=False) if final_ln else nn.Identity()
        self.head = nn.Linear(d_model, vocab, bias=False)
        if init is Init.flax:
            flax_init_(self)

    def forward(self, tokens: torch.Tensor, start: int = 0, context: list | None = None):
        """Logits [B, L, M] for tokens [B, L] at positions start .. start + L - 1, which follow
        the per-layer `context` (keys, values) of positions 0 .. start - 1; and the keys and
        values so far."""
        x = self.tok(tokens) + self.pos.weight[start:start + tokens.shape[1]]
        kv = []
        for i, block in enumerate(self.blocks):
            x, c = block(x, None if context is None else context[i])
            kv.append(c)
        return self.head(self.ln(x)), kv


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


# ---- the sampler: one position per step for the whole batch ----

# torch's CPU batched matmul multiplies element by element below 400 multiply-adds per product
# and calls the BLAS batch routine from there up, which is several times faster per product at
# this size; a decode step's products with a row's answer keys and values are (1 x 16) @ (16 x n)
# and (1 x n) @ (n x 16) per head, so the answer buffers hold at least 25 positions, the unwritten
# ones masked (the sampler at H = 20 took 1.26x as long with n = H - 1; the same at H = 10)
MIN_ANSWER_SLOTS = 25


class Decoder:
    """The transformer's decode steps for P prompts x S samples (rows prompt-major): one position
    per step for every row, computing what `Transformer.forward` computes. At the default size
    (100 rows, width 64) every op is small and the cost is the number of ops and the bytes they
    touch, so:

    - a prompt's keys and values, computed once, are shared by its samples: its queries attend
      to them in one (S x d) @ (d x H) product per prompt and head, and no row copies them;
    - each row's answer keys and values sit in buffers allocated once per batch and written in
      place, one position per step (no torch.cat of the growing prefix);
    - every buffer and view a step uses is made here, once: a step is about 15 ops per layer,
      in place where torch does that without a hidden copy (out= into a strided view does not).

    Its log-probabilities are the teacher-forced pass's up to float rounding (about 1e-6). It
    computes in the dtype of the prompt pass's keys (bf16 where that pass ran under autocast, as
    a bf16 screen's does), with autocast off: its out= buffers fix every op's dtype."""

    def __init__(self, net: "Transformer", kv: list, samples: int):
        k0 = kv[0][0]  # the prompt pass's keys, [P, heads, H, d / heads]
        p, nh, h, hd = k0.shape
        d, s, rows, slots = nh * hd, samples, p * samples, max(h - 1, MIN_ANSWER_SLOTS)
        pn, rh = p * nh, p * nh * samples
        new, dt = k0.new_empty, k0.dtype
        self.shape = (d,)
        self.qkv = new(rows, 3 * d)  # columns (head, q/k/v, dim): the weight's rows are reordered below
        qkv = self.qkv.view(p, s, nh, 3, hd)
        self.kv_new = qkv[:, :, :, 1:].permute(3, 0, 2, 1, 4)  # [2, P, heads, S, d / heads]
        self.q_new = qkv[:, :, :, 0].transpose(1, 2)  # [P, heads, S, d / heads]
        self.q = new(p, nh, s, hd)  # (prompt, head, sample): the shared-prompt product's layout
        self.q_prompt, self.q_answer = self.q.view(pn, s, hd), self.q.view(rh, 1, hd)
        self.s_prompt, self.s_answer, self.scores = new(pn, s, h), new(rh, 1, slots), new(rh, h + slots)
        self.s_parts = [self.s_prompt.view(rh, h), self.s_answer.view(rh, slots)]  # concatenated into scores
        self.attn = new(rh, h + slots)
        self.a_prompt, self.a_answer = self.attn[:, :h].view(pn, s, h), self.attn[:, None, h:]
        self.y = new(pn, s, hd)
        self.y_answer, self.y_heads = self.y.view(rh, 1, hd), self.y.view(p, nh, s, hd).transpose(1, 2)
        self.y_rows = new(rows, d)  # y back in row-major order for the projection
        self.y_rows_heads = self.y_rows.view(p, s, nh, hd)
        self.ffn = new(rows, net.blocks[0].ffn[0].out_features)
        self.mask = k0.new_full((rh, 1, slots), float("-inf"))  # answer slots not yet written
        self.layers = []
        for block, (k, v) in zip(net.blocks, kv):
            w = block.qkv.weight.view(3, nh, hd, d)  # the attention scale folded into q (exact at d / heads = 16)
            w = torch.cat([w[:1] * hd ** -0.5, w[1:]]).transpose(0, 1).reshape(3 * d, d)
            answer_kv = k0.new_zeros(2, p, nh, s, slots, hd)  # finite: a masked slot's value meets weight 0
            self.layers.append((block.ln1.weight.to(dt), block.ln1.eps, w.t().to(dt), block.proj.weight.t().to(dt),
                                block.ln2.weight.to(dt), block.ln2.eps, block.ffn[0].weight.t().to(dt),
                                block.ffn[2].weight.t().to(dt),
                                k.reshape(pn, h, hd).transpose(1, 2), v.reshape(pn, h, hd), answer_kv,
                                answer_kv[0].view(rh, slots, hd).transpose(1, 2), answer_kv[1].view(rh, slots, hd)))
        # the final LayerNorm's scale, or None where the network has none (the official form)
        final = net.ln if isinstance(net.ln, nn.LayerNorm) else None
        self.ln = None if final is None else final.weight.to(dt)
        self.ln_eps, self.head = 1e-5 if final is None else final.eps, net.head.weight.t().to(dt)
        # the input of answer token t - 1 sits at position H + t - 1
        self.embed = (net.tok.weight[None] + net.pos.weight[h:2 * h - 1, None]).to(dt)

    def step(self, token: torch.Tensor, t: int) -> torch.Tensor:
        """Logits [rows, M] of answer token t (1 <= t < H, in order), given answer token t - 1 [rows]."""
        shape, qkv, q, y, y_rows, ffn = self.shape, self.qkv, self.q, self.y, self.y_rows, self.ffn
        self.mask.select(-1, t - 1).zero_()
        x = self.embed[t - 1].index_select(0, token)
        for w1, eps1, wqkv, wo, w2, eps2, w_in, w_out, k_prompt, v_prompt, answer_kv, k_answer, v_answer in self.layers:
            torch.mm(torch.layer_norm(x, shape, w1, None, eps1), wqkv, out=qkv)
            answer_kv.select(-2, t - 1).copy_(self.kv_new)
            q.copy_(self.q_new)
            torch.bmm(self.q_prompt, k_prompt, out=self.s_prompt)
            torch.baddbmm(self.mask, self.q_answer, k_answer, out=self.s_answer)
            torch.softmax(torch.cat(self.s_parts, 1, out=self.scores), -1, out=self.attn)
            torch.bmm(self.a_answer, v_answer, out=self.y_answer)
            y.baddbmm_(self.a_prompt, v_prompt)
            self.y_rows_heads.copy_(self.y_heads)
            x.addmm_(y_rows, wo)
            torch.mm(torch.layer_norm(x, shape, w2, None, eps2), w_in, out=ffn).relu_()
            x.addmm_(ffn, w_out)
        return torch.mm(x if self.ln is None else torch.layer_norm(x, shape, self.ln, None, self.ln_eps), self.head)


@torch.no_grad()
def sample(net: Transformer, prompt: torch.Tensor, samples: int = 1, greedy: bool = False,
           generator: torch.Generator | None = None, full: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Write H answer tokens, `samples` per prompt: one pass over the distinct prompts, then one
    position per step for all rows at once (`Decoder`). Rows are prompt-major.
    Returns (answer [P * samples, H], log pi of each answer token [P * samples, H]); with
    full=True, the whole log pi(. | prompt, answer_<t) at each position instead: [P * samples, H, M]."""
    p, h = prompt.shape
    rows = p * samples
    # made outside inference mode: normal tensors, which the learner may combine with ones needing grad
    answer = prompt.new_empty(rows, h)
    logp = torch.empty(rows, h, net.head.out_features, device=prompt.device)
    noise = logp.new_empty(rows, logp.shape[-1])
    # inference mode: no version counters or view tracking inside, a few percent here
    with torch.inference_mode():
        logits, kv = net(prompt)  # under the caller's autocast, if any
    with torch.inference_mode(), torch.autocast(prompt.device.type, enabled=False):  # see Decoder
        decoder = Decoder(net, kv, samples) if h > 1 else None
        for t in range(h):
            check_stop()  # a long answer (large H) is many passes: Ctrl-C need not wait for them all
            lp, a = logp[:, t], answer[:, t]
            if t == 0:
                lp.copy_(logits[:, -1].float().log_softmax(-1).repeat_interleave(samples, 0))
            else:
                torch.log_softmax(decoder.step(answer[:, t - 1], t).float(), -1, out=lp)
            if greedy:
                torch.argmax(lp, -1, out=a)
            else:  # argmax_i pi_i / E_i with E_i ~ Exp(1) is an exact draw from pi (Gumbel-max in disguise)
                torch.argmax(lp.exp().div_(noise.exponential_(generator=generator)), -1, out=a)
    return answer, logp if full else logp.gather(-1, answer[..., None])[..., 0]


# ---- evaluation: the expected error, resolved far below 1 / (prompts x H) ----

