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

Policy. A decoder-only transformer as in the official code (`reversal_model.py`): learned
token and position embeddings, pre-LayerNorm blocks without biases, causal self-attention,
a ReLU FFN. The input is the prompt followed by the answer; answer token t is predicted at
position H - 1 + t, so the last answer token is never an input (2H - 1 positions).

Compute. Sampling runs without autograd, with a KV cache (one pass over the prompts, then
one position per step for the whole batch, in `reversal_model.Decoder`: about 3x faster on CPU
at H = 30 than decode steps through the model's forward with a growing cache;
scripts/bench_sampler.py). Ungated methods then pay one teacher-forced forward with autograd
over prompt + answer; gated methods screen with the log-probabilities the sampler already
computed (the same policy, the same numbers up to float rounding) and re-run the forward with
autograd on the kept rows only. Every pass computes each distinct prompt's positions once and
shares their keys and values among its samples.

Quality: `expected_error` = 1 - E[R] on fresh prompts, E over the policy's answers, with
its standard error over prompts (`expected_error_se`). For the `fraction` score it reads
pi of the target token along each sampled answer (Rao-Blackwellised: unbiased, and nearly
exact near convergence); the `sequential` score and the all-correct term are exact, by
teacher forcing on the target. It resolves errors far below 1 / (prompts x H), the grain
of `seq_error` = 1 - mean R of the sampled answers (5e-4 at 200 prompts and H = 10),
which is kept beside it, as are `greedy_error` (argmax decoding) and `cumulative_error`
(1 - mean R of every training episode so far). Runs before `expected_error` existed have
`seq_error` as their quality (their summary's quality_metric says which).
"""

from __future__ import annotations

import torch
from torch import nn

from .reversal_config import ReversalConfig, validate_reversal as _validate
from ..models import build_model
from . import Batch, Task
from .baselines import grouped_advantage  # noqa: F401  (also imported from here by scripts and tests)
# Transformer stays importable from here: task.model={_target_: kondo_bench.tasks.reversal.Transformer}
from .reversal_model import Transformer, answer_dist, answer_logp, flax_init_, sample  # noqa: F401



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


# ---- evaluation: the expected error, resolved far below 1 / (prompts x H) ----

def token_errors(dist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - pi(target_t | context) at each position, from log pi(. | context) [B, H, M]: [B, H]
    in float64, summed over the other tokens rather than subtracted from 1, so an error of
    1e-12 is 1e-12 and not 0."""
    other = dist.double().scatter(-1, target[..., None], float("-inf"))
    return other.logsumexp(-1).exp()


def expected_error(dist: torch.Tensor, target: torch.Tensor, scoring: str = "fraction", kappa: float = 1.0,
                   forced: torch.Tensor | None = None) -> torch.Tensor:
    """1 - E[R | prompt] for each prompt row, E over the policy's answers: [B], float64.

    - `fraction` score, E[1{a_t = y_t}] = E_{a_<t}[pi(y_t | a_<t)]: `dist` holds
      log pi(. | prompt, a_<t) along one sampled answer a per row, and reading pi of the
      *target* there (Rao-Blackwellisation) is an unbiased estimate with far less variance
      than the sampled score: near convergence it is nearly exact, one pass, no extra cost.
    - `sequential` score and the all-correct term (kappa < 1) are exact: the chance that the
      first t tokens are right is prod_{s <= t} pi(y_s | y_<s), from `forced`, log pi(. |
      prompt, y_<t) teacher-forced on the target.
    """
    if scoring not in ("fraction", "sequential"):
        raise ValueError(f"unknown scoring {scoring!r}")
    err = torch.zeros(target.shape[0], dtype=torch.float64, device=target.device)
    if scoring == "sequential" or kappa < 1:
        if forced is None:
            raise ValueError("sequential scoring and kappa < 1 need the target teacher-forced (forced=...)")
        right = torch.log1p(-token_errors(forced, target)).cumsum(-1)  # log P(first t tokens right)
    if kappa > 0:
        score = token_errors(dist, target).mean(-1) if scoring == "fraction" else -torch.expm1(right).mean(-1)
        err = err + kappa * score
    if kappa < 1:
        err = err + (1 - kappa) * -torch.expm1(right[:, -1])
    return err


def adam(net: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch supports it (CPU from torch 2.4): a
    millisecond a step on CPU, 2-3 % of a step here."""
    try:
        return torch.optim.Adam(net.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(net.parameters(), lr=lr)


# ---- the task ----

class ReversalTask(Task):
    quality = "expected_error"
    quality_labels = {"expected_error": "sequence error 1 − E[R]", "seq_error": "sequence error (sampled)"}
    checkpoint_attrs = ("train_reward", "train_episodes", "eval_rng")
    units_per_row = "many"  # H answer tokens: method.unit=sequence gates whole answers
    schema = ReversalConfig

    @classmethod
    def validate(cls, cfg) -> None:
        _validate(cfg.task)

    def __init__(self, cfg, device: torch.device):
        self.cfg, self.device = cfg, device
        self.H, self.M, self.S = cfg.horizon, cfg.vocab, cfg.samples_per_prompt
        _validate(cfg)
        # the keys a step reads, read once (a key of the OmegaConf config costs tens of
        # microseconds on a step's cold caches)
        self.prompts_per_step = cfg.batch_size // self.S
        self.variant, self.scoring, self.kappa = str(cfg.variant), str(cfg.scoring), float(cfg.kappa)
        self.net = build_model(cfg.get("model"), lambda: Transformer(self.M, 2 * self.H, cfg.d_model, cfg.layers,
                                                                     cfg.heads, cfg.ffn, cfg.init, cfg.final_ln),
                               vocab=self.M, max_len=2 * self.H).to(device)
        self.optimizer = adam(self.net, cfg.lr)
        # Evaluation draws from its own generator so that the training trajectory does not
        # depend on how often one evaluates.
        self.eval_gen = torch.Generator(device).manual_seed(int(torch.randint(2**62, ())))
        self.train_reward = torch.zeros((), device=device)  # sum of R over training episodes
        self.train_episodes = 0

    @classmethod
    def memory_terms(cls, cfg) -> list[tuple[str | None, float, str]]:
        t, f = cfg.task, 4
        h, m, d, n_layers = t.horizon, t.vocab, t.d_model, t.layers
        b, e, p = t.batch_size, t.eval_prompts, max(t.batch_size // t.samples_per_prompt, 1)
        weights = 2 * m * d + 2 * h * d + n_layers * (4 * d * d + 2 * d * t.ffn + 8 * d)
        # per answer token and layer, kept for the backward pass: q, k, v, out, norms, the FFN, the scores
        per_token = n_layers * (10 * d + 2 * t.ffn + 2 * t.heads * 2 * h)
        return [("task.d_model" if 2 * m * d < weights / 2 else "task.vocab", weights * f * 4, "parameters"),
                ("task.batch_size", b * h * per_token * f, "the learn step's activations"),
                ("task.batch_size", b * h * m * f * 3, "the learn step's logits"),
                ("task.batch_size", p * t.heads * h * h * f * n_layers, "the prompts' attention scores"),
                ("task.batch_size", b * n_layers * 2 * 2 * h * d * f, "the sampler's KV cache"),
                ("task.eval_prompts", e * h * m * (2 * f + 2 * 8) + e * n_layers * 2 * 2 * h * d * f,
                 "an evaluation's distributions and KV cache")]

    @property
    def eval_rng(self) -> torch.Tensor:  # the evaluation generator's state, for checkpoints
        return self.eval_gen.get_state()

    @eval_rng.setter
    def eval_rng(self, state: torch.Tensor) -> None:
        self.eval_gen.set_state(state)

    def _prompts(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.M, (n, self.H), device=self.device, generator=generator)

    def act(self) -> Batch:
        prompt = self._prompts(self.prompts_per_step)  # each distinct prompt once: [P, H]
        group = torch.arange(len(prompt), device=self.device).repeat_interleave(self.S)  # prompt-major
        target = target_of(prompt, self.variant, self.M)[group]
        # the screen's log pi comes from the sampler: the same policy, no extra pass
        answer, logp = sample(self.net, prompt, self.S)
        reward = reward_of(answer, target, self.scoring, self.kappa)
        self.train_reward += reward.sum()  # a tensor: no host sync per step
        self.train_episodes += reward.numel()
        advantage = grouped_advantage(reward, self.S)[:, None].expand(-1, self.H).contiguous()
        return Batch(logp, advantage, reward, None,
                     {"prompt": prompt, "group": group, "action": answer, "target": target})

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        """The compacted re-forward: only the kept rows, and only the prompts they came from.
        Over every row it is the one teacher-forced forward an ungated step pays after sampling
        (the default `act_with_grad`)."""
        used, group = torch.unique(batch.data["group"][rows], return_inverse=True)
        return answer_logp(self.net, batch.data["prompt"][used], batch.data["action"][rows], group)

    @torch.no_grad()
    def evaluate(self) -> dict:
        prompt = self._prompts(self.cfg.eval_prompts, self.eval_gen)
        target = target_of(prompt, self.cfg.variant, self.M)
        sampled, dist = sample(self.net, prompt, generator=self.eval_gen, full=True)
        greedy, _ = sample(self.net, prompt, greedy=True)
        score = lambda a: reward_of(a, target, self.cfg.scoring, self.cfg.kappa).mean().item()  # noqa: E731
        forced = None
        if self.cfg.scoring != "fraction" or self.cfg.kappa < 1:
            rows = torch.arange(len(prompt), device=self.device)
            forced = answer_dist(self.net, prompt, target, rows)
        err = expected_error(dist, target, self.cfg.scoring, self.cfg.kappa, forced)
        return {
            "expected_error": err.mean().item(),
            "expected_error_se": (err.std() / len(err) ** 0.5).item() if len(err) > 1 else float("nan"),
            "seq_error": 1 - score(sampled),
            "greedy_error": 1 - score(greedy),
            "cumulative_error": 1 - self.train_reward.item() / max(self.train_episodes, 1),
        }

    def info(self) -> dict:
        return {"parameters": sum(p.numel() for p in self.net.parameters())}
