"""task=lm: group-relative policy gradients on a Hugging Face causal LM, gated like every task.

Step. batch_size / samples_per_prompt prompts are drawn, each completed samples_per_prompt
times by sampling (temperature 1, KV cache). The reward function scores the decoded
completions; the baseline is the group's mean reward (GRPO's, optionally divided by the
group's standard deviation, task.scale_rewards), and the sequence's advantage is broadcast
to its tokens: units are tokens, [B, T] with T = the completion length. Positions after a
row's end-of-sequence token are padding: no unit (`valid`), never kept, no term.

Compute. The gate screens on the log pi the sampler computed (no extra forward). The
learning forward runs on the kept rows only, compacted, and right-trimmed: it ends at the
last kept token of those rows (for an ungated step, at the last real token of the batch),
so no position after it is computed forward or backward. The loss is the loop's: the sum
of kept tokens' terms over all B x T screened units, a constant; with an ungated PG step it is
TRL's GRPO loss with loss_type="dr_grpo" at one iteration (docs/lm.md).

Accounting beside the loop's: each metrics row carries the tokens the task ran, so the
gate's saving can be read in tokens as well as in rows: `gen_tokens` (completion tokens
sampled), `learn_rows` and `learn_tokens` (rows and positions, prompt included, of the
learning forward and backward, after trimming).
"""

from __future__ import annotations

import functools
from contextlib import nullcontext

import torch

from .. import Batch, Task
from ..baselines import grouped_advantage
from .config import LmConfig, validate_lm
from .model import build_model, completion_logp, require_transformers, sample
from .problems import REWARDS, answer_length, draw
from .sizes import memory_terms


def group_advantage(reward: torch.Tensor, group: int, scale: bool) -> torch.Tensor:
    """U = R - mean of the group's rewards; with scale, divided by the group's std + 1e-4
    (Bessel-corrected, as TRL's GRPOTrainer does)."""
    u = grouped_advantage(reward, group)
    if scale:
        std = reward.reshape(-1, group).std(-1, keepdim=True).expand(-1, group).reshape(-1)
        u = u / (std + 1e-4)
    return u


def trimmed_length(valid: torch.Tensor, keep: torch.Tensor | None = None) -> int:
    """The learning forward's completion length: one past the last kept (else last valid) unit
    of any row; 0 when there is none."""
    marks = valid if keep is None else keep
    cols = marks.any(0).nonzero()
    return int(cols[-1]) + 1 if cols.numel() else 0


def reward_function(cfg):
    """The problem's reward, or the user's `task.reward` ({_target_: ..., kwargs}) bound to its kwargs."""
    if cfg.reward is None:
        return REWARDS[cfg.problem]
    from hydra.utils import instantiate

    from ...errors import UserError

    try:
        return instantiate(cfg.reward, _partial_=True)
    except Exception as e:  # an unimportable _target_: one line, not Hydra's chained traceback
        raise UserError(f"task.reward: cannot load {cfg.reward.get('_target_')} ({type(e).__name__}); give "
                        "_target_ as an importable pkg.module.function") from None


class LmTask(Task):
    quality = "reward_error"
    quality_labels = {"reward_error": "1 − mean reward (sampled answers)",
                      "greedy_reward_error": "1 − mean reward (greedy answers)"}
    quality_log = False  # a user's reward need not stay in [0, 1]
    units_per_row = "many"  # completion tokens: method.unit=sequence gates whole completions
    checkpoint_attrs = ("eval_rng", "tokens")
    schema = LmConfig

    @classmethod
    def validate(cls, cfg) -> None:
        validate_lm(cfg.task)

    @classmethod
    def memory_terms(cls, cfg) -> list[tuple[str | None, float, str]]:
        return memory_terms(cfg)

    def __init__(self, cfg, device: torch.device):
        require_transformers()
        validate_lm(cfg)
        from .tokenizer import char_tokenizer, load_tokenizer

        self.cfg, self.device, self.S = cfg, device, cfg.samples_per_prompt
        m = cfg.model
        tok_path = m.tokenizer or m.path
        self.tokenizer = load_tokenizer(tok_path) if tok_path else char_tokenizer()
        self.eos, self.pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        self.model = build_model(m, len(self.tokenizer), self.pad, self.eos, device)
        self.T = cfg.max_completion or answer_length(cfg.problem, cfg.length)
        self.reward_fn = reward_function(cfg)
        params = [p for p in self.model.parameters() if p.requires_grad]
        try:  # fused Adam where this torch has it (CPU from torch 2.4)
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        # evaluation draws its prompts (on the CPU) and its samples (on the device) from generators of
        # its own, so that the training trajectory does not depend on how often one evaluates
        seed = int(torch.randint(2**62, ()))
        self.eval_gen = torch.Generator().manual_seed(seed)
        self.eval_noise = torch.Generator(device).manual_seed(seed + 1)
        self.tokens = {"gen_tokens": 0, "learn_rows": 0, "learn_tokens": 0}

    @property
    def eval_rng(self) -> tuple[torch.Tensor, torch.Tensor]:  # the evaluation generators' states, for checkpoints
        return self.eval_gen.get_state(), self.eval_noise.get_state()

    @eval_rng.setter
    def eval_rng(self, state: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.eval_gen.set_state(state[0])
        self.eval_noise.set_state(state[1])

    def autocast(self):
        """bf16 autocast around every forward when task.precision=bf16; the weights stay fp32."""
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt",
                             add_special_tokens=False)
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def decode(self, completion: torch.Tensor, valid: torch.Tensor) -> list[str]:
        """The completions' texts up to (not including) the end-of-sequence token."""
        keep = valid & (completion != self.eos)
        return self.tokenizer.batch_decode([r[k].tolist() for r, k in zip(completion.cpu(), keep.cpu())],
                                           skip_special_tokens=True)

    def rewards(self, prompts: list[str], completion: torch.Tensor, valid: torch.Tensor,
                answers: list[str]) -> torch.Tensor:
        texts = self.decode(completion, valid)
        r = self.reward_fn(prompts=prompts, completions=texts, answer=answers)
        return torch.as_tensor(r, dtype=torch.float32, device=self.device)

    def act(self) -> Batch:
        prompts, answers = draw(self.cfg.problem, self.cfg.batch_size // self.S, self.cfg.length, self.cfg.vocab)
        prompt, prompt_mask = self.encode(prompts)
        group = torch.arange(len(prompts), device=self.device).repeat_interleave(self.S)  # prompt-major
        with self.autocast():
            completion, logp, valid = sample(self.model, prompt[group], prompt_mask[group], self.T, self.eos,
                                             self.pad)
        reward = self.rewards([prompts[g] for g in group.tolist()], completion, valid,
                              [answers[g] for g in group.tolist()])
        advantage = group_advantage(reward, self.S, self.cfg.scale_rewards)[:, None] * valid
        self.tokens["gen_tokens"] += int(valid.sum())
        return Batch(logp, advantage, reward, None, {
            "prompt": prompt, "prompt_mask": prompt_mask, "group": group, "action": completion, "valid": valid})

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        """The compacted, right-trimmed learning forward over `rows`: [len(rows), T].

        It ends at the last unit the gate kept in these rows (batch.data["keep"], set by the
        loop's learn step), or at their last real token when nothing was gated. Positions past
        that, and padding, return the sampler's log pi, detached: their terms are zero, so the
        gradient is the untrimmed masked loss's (tests/test_lm.py checks it)."""
        d = batch.data
        valid = d["valid"][rows]
        keep = d["keep"][rows] if "keep" in d else None
        upto = max(trimmed_length(valid, keep), 1)
        g = d["group"][rows]
        with self.autocast():
            lp = completion_logp(self.model, d["prompt"][g], d["prompt_mask"][g], d["action"][rows], valid, upto)
        self.tokens["learn_rows"] += len(rows)
        self.tokens["learn_tokens"] += len(rows) * (int(d["prompt_mask"][g].any(0).sum()) + upto - 1)
        old = batch.logp[rows].detach()
        lp = torch.cat([lp, old[:, upto:]], 1)
        return torch.where(valid, lp, old)

    @torch.no_grad()
    def evaluate(self) -> dict:
        prompts, answers = draw(self.cfg.problem, self.cfg.eval_prompts, self.cfg.length, self.cfg.vocab,
                                self.eval_gen)
        prompt, prompt_mask = self.encode(prompts)
        out = {}
        for name, greedy in (("reward_error", False), ("greedy_reward_error", True)):
            with self.autocast():
                completion, _, valid = sample(self.model, prompt, prompt_mask, self.T, self.eos, self.pad,
                                              greedy=greedy, generator=self.eval_noise)
            out[name] = 1 - self.rewards(prompts, completion, valid, answers).mean().item()
        out["eval_reward"] = 1 - out["reward_error"]
        return {**out, **self.tokens}

    def info(self) -> dict:
        return {"parameters": sum(p.numel() for p in self.model.parameters()),
                "model": type(self.model).__name__, "completion_tokens": self.T}
