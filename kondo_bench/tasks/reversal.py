"""Transformer token reversal: read H random tokens, write them back reversed.

Environment. A prompt is H tokens drawn uniformly from a vocabulary of M; the policy then
writes H answer tokens autoregressively, with no separator. The target is the reversed
prompt (`variant=reverse`), the prompt itself (`copy`) or each token plus one mod M
(`flip`). The reward of an episode is
    R = kappa * score + (1 - kappa) * 1{every answer token correct},
with `score` the fraction of answer tokens equal to the target (`scoring=fraction`), or
the fraction up to the first error (`scoring=sequential`). kappa = 1 is the paper's reward.

Batch. Each step draws batch_size / samples_per_prompt prompts and samples_per_prompt
answers for each (10 x 10 = 100 episodes). The baseline of an episode is the mean reward
of its prompt's samples; the sequence's advantage U = R - b is broadcast to its H tokens,
so log-probabilities, advantages, delight and the gate are all per token: [B, H].

Policy. A decoder-only transformer as in the official code: learned token and position
embeddings, pre-LayerNorm blocks without biases, causal self-attention, a ReLU FFN.
The input is the prompt followed by the answer; answer token t is predicted at position
H - 1 + t, so the last answer token is never an input (2H - 1 positions).

Quality: `seq_error` = 1 - mean R of sampled answers on fresh prompts (lower is better),
with `greedy_error` (argmax decoding) and `cumulative_error` (1 - mean R of every
training episode so far) beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from . import Batch, Task

VARIANTS = ("reverse", "copy", "flip")
SCORINGS = ("fraction", "sequential")


# ---- the environment: targets and rewards (pure functions, tested on hand-made sequences) ----

def target_of(prompt: torch.Tensor, variant: str, vocab: int) -> torch.Tensor:
    """The correct answer for each prompt row: [B, H] -> [B, H]."""
    if variant == "reverse":
        return prompt.flip(-1)
    if variant == "copy":
        return prompt.clone()
    if variant == "flip":
        return (prompt + 1) % vocab
    raise ValueError(f"unknown variant {variant!r}")


def reward_of(answer: torch.Tensor, target: torch.Tensor, scoring: str = "fraction",
              kappa: float = 1.0) -> torch.Tensor:
    """R = kappa * score + (1 - kappa) * 1{all correct}, per row: [B, H] x2 -> [B]."""
    correct = (answer == target).float()
    if scoring == "fraction":
        score = correct.mean(-1)
    elif scoring == "sequential":  # only the unbroken run of correct tokens from the start counts
        score = correct.cumprod(-1).mean(-1)
    else:
        raise ValueError(f"unknown scoring {scoring!r}")
    if kappa == 1:
        return score
    return kappa * score + (1 - kappa) * correct.min(-1).values


def grouped_advantage(reward: torch.Tensor, group: int) -> torch.Tensor:
    """U = R - mean R of the same prompt's samples; rows are prompt-major: [P * group] -> same."""
    r = reward.reshape(-1, group)
    return (r - r.mean(-1, keepdim=True)).reshape(-1)


# ---- the policy ----

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

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """x: [B, L, D]. With `cache` (a [k, v] list, no autograd): an empty cache is filled
        with the keys and values of x (causal attention); a filled one takes one new position
        (L = 1) that attends to every cached one and appends its own."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        causal = True
        if cache is not None:
            if cache[0] is not None:  # decoding one new position: it may see everything before it
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
                causal = False
            cache[0], cache[1] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.ffn(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, vocab: int, max_len: int, d_model: int, layers: int, heads: int, ffn: int):
        super().__init__()
        if d_model % heads:
            raise UserError(f"task.d_model ({d_model}) must be divisible by task.heads ({heads})")
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, ffn) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model, bias=False)
        self.head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, tokens: torch.Tensor, start: int = 0, caches: list | None = None) -> torch.Tensor:
        """Logits [B, L, M] for tokens [B, L] at positions start .. start + L - 1."""
        x = self.tok(tokens) + self.pos.weight[start:start + tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.head(self.ln(x))


# ---- the task ----

class ReversalTask(Task):
    quality = "seq_error"

    def __init__(self, cfg, device: torch.device):
        self.cfg, self.device = cfg, device
        self.H, self.M, self.S = cfg.horizon, cfg.vocab, cfg.samples_per_prompt
        _validate(cfg)
        self.net = Transformer(self.M, 2 * self.H, cfg.d_model, cfg.layers, cfg.heads, cfg.ffn).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        # Evaluation draws from its own generator so that the training trajectory does not
        # depend on how often one evaluates.
        self.eval_gen = torch.Generator(device).manual_seed(int(torch.randint(2**62, ())))
        self.train_reward = torch.zeros((), device=device)  # sum of R over training episodes
        self.train_episodes = 0

    # -- policy helpers --

    def _prompts(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.M, (n, self.H), device=self.device, generator=generator)

    @torch.inference_mode()
    def sample(self, prompt: torch.Tensor, greedy: bool = False,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Write H answer tokens for each prompt with a KV cache: one pass over the prompt,
        then one position per step. Returns (answer [B, H], log pi of each token [B, H])."""
        caches = [[None, None] for _ in self.net.blocks]
        logits = self.net(prompt, 0, caches)[:, -1]
        answer, logp = [], []
        for t in range(self.H):
            logp_all = logits.float().log_softmax(-1)
            if greedy:
                a = logp_all.argmax(-1)
            else:  # Gumbel-max: one kernel, no host sync, same law as multinomial
                u = torch.rand(logp_all.shape, device=self.device, generator=generator)
                a = (logp_all - (-u.clamp_min(1e-20).log()).log()).argmax(-1)
            answer.append(a)
            logp.append(logp_all.gather(-1, a[:, None])[:, 0])
            if t + 1 < self.H:
                logits = self.net(a[:, None], self.H + t, caches)[:, -1]
        return torch.stack(answer, 1), torch.stack(logp, 1)

    def _logp(self, prompt: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log pi(answer_t | prompt, answer_<t), [B, H], one forward pass."""
        seq = torch.cat([prompt, answer[:, :-1]], 1)
        logits = self.net(seq)[:, self.H - 1:]
        return logits.float().log_softmax(-1).gather(-1, answer[..., None])[..., 0]

    # -- the Task interface --

    def act(self, grad: bool, supervised: bool) -> Batch:
        n_prompts = self.cfg.batch_size // self.S
        prompt = self._prompts(n_prompts).repeat_interleave(self.S, 0)  # prompt-major rows
        target = target_of(prompt, self.cfg.variant, self.M)
        if supervised:  # the cross-entropy oracle: the true answer is the action
            answer, logp = target, None
        else:
            answer, logp = self.sample(prompt)
            answer, logp = answer.clone(), logp.clone()  # out of inference mode, usable by autograd
        logp_grad = None
        if grad:  # one teacher-forced forward with autograd, as a plain loop would run
            logp_grad = self._logp(prompt, answer)
            logp = logp_grad.detach()
        elif logp is None:
            with torch.no_grad():
                logp = self._logp(prompt, answer)
        # For a gated method the screen's log-probabilities are those the sampler computed:
        # the same policy and the same numbers (up to float rounding) as a teacher-forced
        # pass, without paying for one.
        reward = reward_of(answer, target, self.cfg.scoring, self.cfg.kappa)
        self.train_reward += reward.sum()
        self.train_episodes += reward.numel()
        advantage = grouped_advantage(reward, self.S)[:, None].expand(-1, self.H).contiguous()
        return Batch(logp, advantage, reward, logp_grad, {"prompt": prompt, "answer": answer})

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        return self._logp(batch.data["prompt"][rows], batch.data["answer"][rows])

    @torch.no_grad()
    def evaluate(self) -> dict:
        prompt = self._prompts(self.cfg.eval_prompts, self.eval_gen)
        target = target_of(prompt, self.cfg.variant, self.M)
        sampled, _ = self.sample(prompt, generator=self.eval_gen)
        greedy, _ = self.sample(prompt, greedy=True)
        score = lambda a: reward_of(a, target, self.cfg.scoring, self.cfg.kappa).mean().item()  # noqa: E731
        return {
            "seq_error": 1 - score(sampled),
            "greedy_error": 1 - score(greedy),
            "cumulative_error": 1 - self.train_reward.item() / max(self.train_episodes, 1),
        }

    def info(self) -> dict:
        return {"parameters": sum(p.numel() for p in self.net.parameters())}


def _validate(cfg) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.variant in VARIANTS, f"unknown task.variant '{cfg.variant}': use one of {', '.join(VARIANTS)}")
    need(cfg.scoring in SCORINGS, f"unknown task.scoring '{cfg.scoring}': use one of {', '.join(SCORINGS)}")
    need(0 <= cfg.kappa <= 1, f"task.kappa must be in [0, 1] (got {cfg.kappa}); 1 is the plain fraction correct")
    need(cfg.horizon >= 1 and cfg.vocab >= 2, f"need task.horizon >= 1 and task.vocab >= 2 "
         f"(got {cfg.horizon}, {cfg.vocab})")
    for key in ("samples_per_prompt", "eval_prompts", "d_model", "layers", "heads", "ffn"):
        need(cfg[key] >= 1, f"task.{key} must be >= 1 (got {cfg[key]})")
    need(cfg.batch_size % cfg.samples_per_prompt == 0,
         f"task.batch_size ({cfg.batch_size}) must be a multiple of task.samples_per_prompt "
         f"({cfg.samples_per_prompt}): each step draws batch_size / samples_per_prompt prompts")
