"""Verifiable-reward text problems: prompts with their answers, and reward functions.

Each reward function has the signature TRL's GRPOTrainer calls a reward function with,
`fn(prompts, completions, answer=[...], **kwargs) -> list[float]`, so one function serves
task=lm and the side-by-side TRL benchmark, and a user's own (task.reward={_target_: ...})
plugs into both. `completions` are the decoded texts up to the end-of-sequence token.

- reversal: H digits from 0 .. M-1 and "=", answer the digits reversed. The reward is the
  fraction of the H answer positions written correctly: task=reversal's reward (its
  `fraction` scoring), so the two tasks can be checked against each other.
- sorting: the same prompts, answer the digits in ascending order; the same reward.
- addition: "a+b=" with a, b of at most H digits (no leading zeros), answer a + b in
  decimal. Answers vary in length, so the model must end them with its end-of-sequence
  token: the reward is the number of positions matching the answer over the longer of the
  two (too long or too short both cost).
"""

from __future__ import annotations

import torch

MAX_ADDITION_DIGITS = 18  # a + b must fit in int64


def positional_accuracy(completion: str, target: str) -> float:
    """The fraction of target positions the completion writes correctly (extra characters ignored)."""
    return sum(a == b for a, b in zip(completion, target)) / len(target)


def reversal_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """Fraction of answer positions correct: task=reversal's reward on the same answers."""
    return [positional_accuracy(c, a) for c, a in zip(completions, answer)]


sorting_reward = reversal_reward  # the same positional score against the sorted digits


def addition_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """Positions matching the answer over the longer of completion and answer."""
    return [sum(x == y for x, y in zip(c, a)) / max(len(c), len(a)) for c, a in zip(completions, answer)]


REWARDS = {"reversal": reversal_reward, "sorting": sorting_reward, "addition": addition_reward}


def answer_length(problem: str, length: int) -> int:
    """Completion tokens the problem's longest answer needs, its end-of-sequence token included
    where answers vary in length (addition)."""
    return length + 2 if problem == "addition" else length


def digits(rows: torch.Tensor) -> list[str]:
    return ["".join(map(str, r)) for r in rows.tolist()]


def draw(problem: str, n: int, length: int, vocab: int,
         generator: torch.Generator | None = None) -> tuple[list[str], list[str]]:
    """n prompts and their answers. Reversal and sorting draw their digits as task=reversal draws
    its tokens (torch.randint(M, (n, H))), from the torch generator given or the global one."""
    if problem in ("reversal", "sorting"):
        x = torch.randint(vocab, (n, length), generator=generator)
        target = x.flip(-1) if problem == "reversal" else x.sort(-1).values
        return [p + "=" for p in digits(x)], digits(target)
    if problem == "addition":
        ab = torch.randint(10 ** length, (n, 2), generator=generator).tolist()
        return [f"{a}+{b}=" for a, b in ab], [str(a + b) for a, b in ab]
    raise ValueError(f"unknown problem {problem!r}")
