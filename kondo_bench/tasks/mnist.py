"""MNIST as a contextual bandit: see an image, name a label, be told only right or wrong.

Policy: an MLP 784 -> 100 -> 100 -> 10 (ReLU) over pixels / 255, Adam, one sampled
action per image, reward 1{a = y}; the label itself is never seen (except by the `ce`
oracle, which trains on data["target"]). Baseline b = sum_a pi(a)^2, the policy's expected reward, without gradient.
Quality: classification error of the argmax action on the held-out images.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..data import load_mnist
from ..models import MLP, build_model
from ..stopping import check_stop
from . import Batch, Task, rows_of, sample_categorical
from .baselines import expected_reward
from .mnist_config import MnistConfig, validate_mnist

log = logging.getLogger(__name__)


def mlp(sizes: list[int]) -> nn.Sequential:
    return MLP(sizes[0], sizes[-1], sizes[1:-1])


class MnistTask(Task):
    schema = MnistConfig

    @classmethod
    def validate(cls, cfg) -> None:
        validate_mnist(cfg)
    quality = "test_error"
    quality_labels = {"test_error": "test error"}

    def __init__(self, cfg, device: torch.device):
        self.cfg, self.device = cfg, device
        # read once: a key of the OmegaConf config costs tens of microseconds on a step's cold
        # caches (its Python path is long), several per cent of a 1 ms step at the default size
        self.batch_size = int(cfg.batch_size)
        data = load_mnist(cfg.data_root, eval_size=cfg.eval_size, verify=cfg.verify_data)
        self.data_info = {"data_source": data.source, "data_root": str(data.root),
                          "train_images": len(data.train_labels), "eval_images": len(data.eval_labels),
                          "data_note": data.note}
        if data.note:
            log.warning(data.note)

        def images(x):  # uint8 [n, 28, 28] -> float [n, 784] on the device, once
            return torch.as_tensor(x, device=device).reshape(len(x), -1).float() / 255

        self.x, self.y = images(data.train_images), torch.as_tensor(data.train_labels, device=device).long()
        self.x_eval = images(data.eval_images)
        self.y_eval = torch.as_tensor(data.eval_labels, device=device).long()
        self.net = build_model(cfg.get("model"), lambda: mlp([784, *cfg.hidden, 10]),
                               in_features=784, out_features=10).to(device)
        # fused: one kernel for all parameters instead of a Python loop over them (CPU and CUDA)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, fused=True)

    @classmethod
    def memory_terms(cls, cfg) -> list[tuple[str | None, float, str]]:
        t = cfg.task
        sizes = [784, *t.hidden, 10]
        weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        return [("task.batch_size", t.batch_size * (784 + 2 * sum(sizes[1:])) * 4 * 2, "a batch's activations"),
                ("task.hidden", weights * 4 * 4, "parameters"),
                ("task.hidden", 10_000 * max(sizes) * 4 * 2, "an evaluation chunk's activations"),
                (None, 70_000 * 784 * 4, "the images on the device")]

    def act(self) -> Batch:
        return self._act(grad=False)

    def act_with_grad(self) -> Batch:  # one forward pass both samples and keeps the graph
        return self._act(grad=True)

    def _act(self, grad: bool) -> Batch:
        idx = torch.randint(len(self.y), (self.batch_size,), device=self.device)
        x, y = rows_of(self.x, idx), self.y[idx]
        with torch.set_grad_enabled(grad):
            logits_all = self.net(x).log_softmax(-1)
        with torch.no_grad():
            probs = logits_all.detach().exp()
            action = sample_categorical(probs)
            reward = (action == y).float()
            baseline = expected_reward(probs)
        logp = logits_all.gather(-1, action[:, None])[:, 0]
        return Batch(logp.detach(), reward - baseline, reward, logp if grad else None,
                     {"x": x, "action": action, "target": y})

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        x, action = rows_of(batch.data["x"], rows), rows_of(batch.data["action"], rows)
        return self.net(x).log_softmax(-1).gather(-1, action[:, None])[:, 0]

    @torch.no_grad()
    def evaluate(self) -> dict:
        wrong = 0
        for start in range(0, len(self.y_eval), 10_000):
            check_stop()
            pred = self.net(self.x_eval[start:start + 10_000]).argmax(-1)
            wrong += (pred != self.y_eval[start:start + 10_000]).sum().item()
        return {"test_error": wrong / len(self.y_eval)}

    def info(self) -> dict:
        return self.data_info
