"""Your own policy network and environment, trained with the Kondo gate (DG-K) from kondo_bench.core.

A contextual bandit: a context x ~ N(0, I), ten arms, reward 1 for the arm a fixed linear map
ranks first. Each step screens the whole batch without autograd, keeps the top `--keep-rate`
of samples by delight, and runs the backward pass on those rows only.

    python examples/own_loop.py --steps 300 --keep-rate 0.1
"""
import argparse

import torch

from kondo_bench.core import Method, backward

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=300)
p.add_argument("--keep-rate", type=float, default=0.1)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
torch.manual_seed(args.seed)
W = torch.randn(8, 10)  # the environment: the correct arm of x is argmax(x W)
policy = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
method = Method("dgk", keep_rate=args.keep_rate)  # PG's terms on the top-rho samples by delight


def accuracy() -> float:
    x = torch.randn(2000, 8)
    with torch.no_grad():
        return (policy(x).argmax(1) == (x @ W).argmax(1)).float().mean().item()


before, screened, backward_samples = accuracy(), 0, 0
for step in range(args.steps):
    x = torch.randn(256, 8)
    with torch.no_grad():  # act and screen: no autograd graph
        dist = torch.distributions.Categorical(logits=policy(x))
        action = dist.sample()
        reward = (action == (x @ W).argmax(1)).float()
        sel = method.select(reward - reward.mean(), dist.log_prob(action))
    # learn: the forward pass re-run with autograd on the kept rows only
    learned = backward(sel, lambda rows: torch.log_softmax(policy(x[rows]), 1).gather(1, action[rows, None])[:, 0],
                       optimizer, method.estimator)
    screened, backward_samples = screened + len(x), backward_samples + learned.backward_rows
print(f"accuracy {before:.3f} -> {accuracy():.3f}; backward samples {backward_samples} of {screened} screened "
      f"({1 - backward_samples / screened:.0%} saved)")
