"""Tabular bandits, where the true gradient is known in closed form.

N contexts (N = 1 is the single-context bandit), K arms each, one correct arm y_n per
context, reward 1{a = y_n}, a softmax over explicit logits z[n], and the normalised
logit step  z <- z + alpha * g / |g|  with g the sampled gradient estimate.

The exact expected policy gradient of J = mean_n pi_n(y_n) is
    g*_n = pi_n(y_n) (e_{y_n} - pi_n) / N,
and for N > 1 the cross-entropy direction is  (+)_n (e_{y_n} - pi_n).  Each step logs the
misalignment 1 - cos(g, g*) of its estimate; rows report the mean since the last row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Batch, Task, rows_of, sample_categorical
from .baselines import constant
from .bandit_config import BanditConfig


def misalignment(g: torch.Tensor, g_true: torch.Tensor) -> float:
    """1 - cos(g, g_true), over the flattened tensors."""
    return 1.0 - F.cosine_similarity(g.reshape(1, -1), g_true.reshape(1, -1)).item()


def exact_gradient(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of mean_n pi_n(y_n) with respect to the logits, in closed form."""
    pi = logits.softmax(-1)
    onehot = F.one_hot(target, logits.shape[-1]).to(pi.dtype)
    p_correct = pi.gather(-1, target[:, None])
    return p_correct * (onehot - pi) / logits.shape[0]


def cross_entropy_direction(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pi = logits.softmax(-1)
    return F.one_hot(target, logits.shape[-1]).to(pi.dtype) - pi


class NormalisedStep(torch.optim.Optimizer):
    """Descent along the loss gradient with a fixed step length: p <- p - alpha g / |g|."""

    def __init__(self, params, step_size: float):
        super().__init__(params, {"step_size": step_size})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            grads = [p.grad for p in group["params"] if p.grad is not None]
            norm = torch.sqrt(sum((g * g).sum() for g in grads))
            scale = group["step_size"] / norm.clamp(min=1e-30)  # a tensor: no host sync
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad * scale)


class BanditTask(Task):
    schema = BanditConfig
    checkpoint_attrs = ("_misalign", "_misalign_ce")
    quality_labels = {"error": "error 1 − π(y*)", "misalignment": "misalignment 1 − cos(ĝ, g*)"}

    def __init__(self, cfg, device: torch.device):
        self.cfg, self.device = cfg, device
        n, k = cfg.contexts, cfg.arms
        # the keys a step reads, read once: a key of the OmegaConf config costs microseconds
        # (tens on a step's cold caches), more than a bandit step's own tensor work
        self.batch_size, self.contexts, self.baseline = int(cfg.batch_size), int(n), float(cfg.baseline)
        self.reward_noise = float(cfg.reward_noise)
        self.logits = torch.nn.Parameter(torch.randn(n, k, device=device) * cfg.logit_std)
        self.target = torch.randint(k, (n,), device=device)
        self.optimizer = NormalisedStep([self.logits], cfg.step_size)
        self.noise_std = self._noise_std(cfg, n, k, device)
        self._misalign: list[float] = []
        self._misalign_ce: list[float] = []

    @classmethod
    def memory_terms(cls, cfg) -> list[tuple[str | None, float, str]]:
        t = cfg.task
        table = t.contexts * t.arms * 4
        return [("task.contexts", table * 4, "parameters"),  # logits, grad, noise sigma, target
                ("task.contexts", table * 4, "the exact gradient and misalignment over every context"),
                ("task.batch_size", t.batch_size * t.arms * 4 * 4, "a batch's rows of logits and probabilities")]

    def _noise_std(self, cfg, n: int, k: int, device) -> torch.Tensor:
        """Per (context, arm) reward-noise sigma: all arms, or a random fraction of the wrong ones."""
        std = torch.full((n, k), float(cfg.reward_noise), device=device)
        if cfg.noisy_arms < 1:
            wrong = torch.rand(n, k, device=device).scatter(1, self.target[:, None], 2.0)  # target last
            rank = wrong.argsort(1).argsort(1)  # 0 .. k-1, the target ranked k-1
            std = torch.where(rank < round(cfg.noisy_arms * (k - 1)), std, torch.zeros_like(std))
        return std

    def _logp(self, context: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return rows_of(self.logits, context).log_softmax(-1).gather(-1, action[:, None])[:, 0]

    def act(self) -> Batch:
        b = self.batch_size
        context = torch.randint(self.contexts, (b,), device=self.device)
        target = self.target[context]
        with torch.no_grad():
            action = sample_categorical(rows_of(self.logits, context).softmax(-1))
            reward = (action == target).float()
            if self.reward_noise > 0:
                reward = reward + self.noise_std[context, action] * torch.randn_like(reward)
            logp = self._logp(context, action)
        return Batch(logp, reward - constant(reward, self.baseline), reward, None,
                     {"context": context, "action": action, "target": target})

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        return self._logp(batch.data["context"][rows], batch.data["action"][rows])

    def learn(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            ascent = -self.logits.grad
            self._misalign.append(misalignment(ascent, exact_gradient(self.logits, self.target)))
            if self.contexts > 1:
                self._misalign_ce.append(misalignment(ascent, cross_entropy_direction(self.logits, self.target)))
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self) -> dict:
        pi = self.logits.softmax(-1)
        p_correct = pi.gather(-1, self.target[:, None])[:, 0]
        out = {
            "error": (1 - p_correct).mean().item(),
            "argmax_error": (pi.argmax(-1) != self.target).float().mean().item(),
            # None when no step was taken since the last row (a gate kept nothing)
            "misalignment": _mean(self._misalign),
        }
        if self.cfg.contexts > 1:
            out["misalignment_ce"] = _mean(self._misalign_ce)
        self._misalign.clear()
        self._misalign_ce.clear()
        return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
