"""A VAE on binarised MNIST as a task of the loop: the encoder is the policy.

With a categorical (or Gaussian) code, the encoder q(z|x) is a policy over codes: the image
is the context, the sampled code z the action, and the decoder's log-likelihood log p(x|z)
the reward (a learned one). Score-function estimators then run through the usual loop:
- `act()` samples `task.samples` codes per image without autograd (rows image-major, as
  reversal's prompt-major groups); reward = log p(x|z), detached; the baseline is the mean
  reward of the image's *other* codes (leave-one-out: no gradient, unbiased); log q of the
  code per latent variable [rows, D] (`task.unit=latent`) or summed per sample [rows].
- `logp(batch, rows)` re-runs the encoder with autograd on the kept rows only, compacted
  (each image once, shared by its kept codes): the gated, counted backward pass.
- `own_loss` is the KL to the prior in closed form, on the same rows: its gradient needs the
  same encoder backward pass, so under a gate it goes with the kept rows (applying it to every
  image would pay every encoder backward pass and save nothing). Per latent unit it is
  divided by D, as the loop divides the estimator's terms by all units, so the two keep the
  ELBO's balance.
- The decoder is not gated: it always learns from every sampled code. Its forward pass is
  the one that computed the rewards (in `act`, with its graph); `learn` adds its loss to the
  step's. Its backward pass over every row is paid by every method alike and is not in
  `backward_samples`, which counts encoder rows (the wall-clock includes it).
Pathwise estimators (reparam, gumbel, silent) train through `pathwise_step` (pathwise.py).

Quality, on the 10,000 test images binarised once: `test_nelbo` = `test_recon` + `test_kl`
in nats per image (the reconstruction term by Monte Carlo with `eval_samples` codes, exact
for the linear decoder); `encoder_grad_var`, the variance of the encoder's gradient estimate
(the trace of its covariance over `var_draws` draws on one fixed minibatch, each draw the
method's whole step: sampling, gate and all), and `encoder_grad_rel_var` (that / ||mean||^2).
Evaluation forks the random generator with a fixed seed, so it never moves training.
"""

from __future__ import annotations

import logging

import torch

from ..config import resolve_estimator, resolve_gate
from .config import CodeUnit, VaeConfig, resolve_into, validate_vae
from ..data import load_mnist
from ..methods import Method
from ..stopping import check_stop
from . import pathwise
from .model import VAE
from ..tasks import Batch, Task
from ..tasks.baselines import leave_one_out

log = logging.getLogger(__name__)
EVAL_SEED, VAR_SEED, FIXED_SEED = 1, 2, 0  # fixed binarisations and evaluation noise, whatever the run's seed
EVAL_CHUNK = 2000


def binarised(p: torch.Tensor, seed: int) -> torch.Tensor:
    """One Bernoulli(p) draw per pixel from a generator of its own: the same for every run."""
    g = torch.Generator(p.device).manual_seed(seed)
    return (torch.rand(p.shape, generator=g, device=p.device) < p).to(p.dtype)


class VaeTask(Task):
    quality = "test_nelbo"
    quality_labels = {"test_nelbo": "test −ELBO (nats)", "test_recon": "test reconstruction −E log p(x|z) (nats)",
                      "test_kl": "test KL (nats)", "encoder_grad_var": "encoder gradient variance (trace)",
                      "encoder_grad_rel_var": "encoder gradient variance / ||mean||²"}
    quality_log = False  # the linear decoder's Gaussian density can make it negative
    schema = VaeConfig
    units_per_row = "many"  # with task.unit=latent a row holds D units, which method.unit=sequence gates whole

    @classmethod
    def validate(cls, cfg) -> None:
        validate_vae(cfg, resolve_estimator(cfg), resolve_gate(cfg))

    @classmethod
    def from_config(cls, cfg, device: torch.device, pixels: tuple | None = None) -> "VaeTask":
        """The task of a run's config on MNIST, or on `pixels` = (train, test) intensities [n, 784] in [0, 1]."""
        info = {}
        if pixels is None:
            data = load_mnist(cfg.task.data_root, eval_size=cfg.task.eval_size, verify=cfg.task.verify_data)
            info = {"data_source": data.source, "data_root": str(data.root), "train_images": len(data.train_labels),
                    "eval_images": len(data.eval_labels), "data_note": data.note}
            if data.note:
                log.warning(data.note)
            # uint8 [n, 28, 28] -> intensities [n, 784] in [0, 1] on the device, once
            pixels = [torch.as_tensor(x, device=device).reshape(len(x), -1).float() / 255
                      for x in (data.train_images, data.eval_images)]
        into = resolve_into(cfg) if cfg.method.name == "silent" else None
        return cls(cfg.task, device, Method.from_config(cfg), cfg.method, *pixels, info, into=into)

    @classmethod
    def memory_terms(cls, cfg) -> list[tuple[str | None, float, str]]:
        t, f = cfg.task, 4
        code = t.latent_dim * (t.classes if getattr(t.latent, "value", t.latent) == "categorical" else 2)
        sizes = [784, *t.hidden, code]
        weights = 2 * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))  # encoder and decoder
        row = 784 * 4 + 2 * sum(t.hidden) * 2 + code * 4  # pixels, both MLPs' activations, the code
        return [("task.hidden", weights * f * 4, "parameters"),
                ("task.batch_size", t.batch_size * t.samples * row * f, "a batch's activations"),
                ("task.eval_samples", EVAL_CHUNK * t.eval_samples * row * f, "an evaluation chunk's activations"),
                ("task.var_images", t.var_images * t.samples * row * f * 2, "the gradient-variance minibatch"),
                ("task.var_draws", weights * f * t.var_draws, "the encoder gradient draws"),
                (None, 70_000 * 784 * f * 3, "the images on the device")]

    def __init__(self, cfg, device: torch.device, method: Method, mcfg, train_pixels: torch.Tensor,
                 eval_pixels: torch.Tensor, info: dict | None = None, into: str | None = None):
        self.cfg, self.device, self.method, self.mcfg, self.into = cfg, device, method, mcfg, into
        self.S, self.unit = cfg.samples, CodeUnit(cfg.unit)
        self.batch_size = int(cfg.batch_size)  # read once: a config key costs tens of µs on a step's cold caches
        self.train_pixels = train_pixels
        fixed = getattr(cfg.binarize, "value", cfg.binarize) == "fixed"
        self.train_fixed = binarised(train_pixels, FIXED_SEED) if fixed else None
        self.x_eval = binarised(eval_pixels, EVAL_SEED)
        pick = torch.randperm(len(train_pixels), generator=torch.Generator().manual_seed(VAR_SEED))[:cfg.var_images]
        self.x_var = binarised(train_pixels[pick.to(device)], VAR_SEED)
        m = train_pixels.mean(0)  # the linear decoder starts at sigma^2 = the data's mean pixel variance
        init_var = float((m * (1 - m)).mean().clamp(min=1e-3))
        self.vae = VAE(cfg, init_var, aux_linear=method.estimator.name == "silent").to(device)
        self.code = self.vae.code
        self.optimizer = torch.optim.Adam(self.vae.parameters(), lr=cfg.lr)
        # silent's score-function part (method.into=pg or dg): the loop's estimator, ungated
        self.score_method = Method(into, eta=mcfg.eta, delight_noise=mcfg.delight_noise) \
            if into in ("pg", "dg") else None
        self.step = 0  # the last training step: the silent weight's clock
        self.info_ = {**(info or {}), "parameters": sum(p.numel() for p in self.vae.parameters())}
        self._decoder_loss = None  # the decoder's loss on the acted codes, added by the next learn()
        self._cache = None  # (rows, encoder outputs): logp's forward pass, reused by own_loss

    # ------------------------------------------------------------ data
    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """Binary training images: a fresh draw per use (dynamic) or the fixed binarisation."""
        if self.train_fixed is not None:
            return self.train_fixed[idx]
        p = self.train_pixels[idx]
        return (torch.rand_like(p) < p).to(p.dtype)

    def draw_images(self) -> torch.Tensor:
        return self.images(torch.randint(len(self.train_pixels), (self.batch_size,), device=self.device))

    # ------------------------------------------------------------ the loop's contract
    def act(self) -> Batch:
        return self.sample_codes(self.draw_images(), grad=False)

    def act_with_grad(self) -> Batch:  # one encoder pass both samples and keeps its graph
        return self.sample_codes(self.draw_images(), grad=True)

    def sample_codes(self, x: torch.Tensor, grad: bool, train: bool = True) -> Batch:
        """S codes per image [B, 784] -> rows image-major; reward log p(x|z), leave-one-out advantage.
        `train`: keep the decoder's graph for the next learn() (not when measuring)."""
        S, n = self.S, x.shape[0] * self.S
        self._cache = None
        with torch.set_grad_enabled(grad):
            params = self.vae.encoder(x)
        z = self.code.sample(params.detach(), S)  # [B, S, D]
        image = torch.arange(x.shape[0], device=x.device).repeat_interleave(S)
        with torch.set_grad_enabled(train):  # the decoder's graph (its parameters only: z is a constant)
            ll = self.vae.decoder.loglik(x[image], self.code.decoder_input(z.reshape(n, -1)))
        if train:
            self._decoder_loss = -ll.mean()
        reward = ll.detach()
        advantage = leave_one_out(reward, S)
        with torch.set_grad_enabled(grad):
            logq = self.code.logq(params, z).reshape(n, -1)  # [rows, D]
        if self.unit is CodeUnit.sample:
            logq = logq.sum(-1)
        else:
            advantage = advantage[:, None].expand_as(logq).contiguous()
        if grad:
            self._cache = (torch.arange(n, device=x.device), params[image])
        return Batch(logq.detach(), advantage, reward, logq if grad else None,
                     {"x": x, "image": image, "action": z.reshape(n, -1)})

    def _encode_rows(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs for these rows, with autograd: each image once (compacted)."""
        c = self._cache
        if c is not None and c[0].shape == rows.shape and torch.equal(c[0], rows):
            return c[1]
        used, inverse = torch.unique(batch.data["image"][rows], return_inverse=True)
        params = self.vae.encoder(batch.data["x"][used])[inverse]
        self._cache = (rows, params)
        return params

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        params = self._encode_rows(batch, rows)
        logq = self.code.logq(params, batch.data["action"][rows][:, None])[:, 0]  # [rows, D]
        return logq.sum(-1) if self.unit is CodeUnit.sample else logq

    def own_loss(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || prior) of each row's image, exact; / D per latent unit (see the module doc)."""
        kl = self.code.kl(self._encode_rows(batch, rows))
        return kl / self.code.dim if self.unit is CodeUnit.latent else kl

    def learn(self, loss: torch.Tensor) -> None:
        """One step of encoder and decoder: the estimator's loss, plus the decoder's on the acted codes."""
        if self._decoder_loss is not None:
            loss, self._decoder_loss = loss + self._decoder_loss, None
        self._cache = None
        super().learn(loss)

    def pathwise_step(self, step: int, timer, guard):
        self.step = step
        return pathwise.step(self, step, timer, guard)

    # ------------------------------------------------------------ evaluation
    def silent_weight(self, step: int | None = None) -> float:
        return pathwise.silent_weight(self.step if step is None else step, self.mcfg)

    @torch.no_grad()
    def test_elbo(self) -> dict:
        recon = kl = 0.0
        for start in range(0, len(self.x_eval), EVAL_CHUNK):
            check_stop()
            x = self.x_eval[start:start + EVAL_CHUNK]
            params = self.vae.encoder(x)
            kl += self.code.kl(params).sum().item()
            if self.vae.decoder is self.vae.linear:  # exact: the closed form
                recon -= self.vae.decoder.expected_loglik(x, self.code, params).sum().item()
                continue
            k = self.cfg.eval_samples
            z = self.code.sample(params, k).reshape(len(x) * k, -1)
            ll = self.vae.decoder.loglik(x.repeat_interleave(k, 0), self.code.decoder_input(z))
            recon -= ll.sum().item() / k
        n = len(self.x_eval)
        return {"test_nelbo": (recon + kl) / n, "test_recon": recon / n, "test_kl": kl / n}

    def encoder_gradient(self) -> torch.Tensor:
        """One draw of the method's encoder gradient on the fixed minibatch, nothing changed."""
        check_stop()  # var_draws of these per evaluation
        if self.method.pathwise:
            loss, _ = pathwise.loss(self, self.x_var, self.step)
            grads = torch.autograd.grad(loss, list(self.vae.encoder.parameters()))
            return torch.cat([g.reshape(-1) for g in grads])
        from ..steps import learn_step  # the loop's own step, so the measure is the trained estimator

        params, grads = list(self.vae.encoder.parameters()), []

        def record(loss: torch.Tensor) -> None:  # takes the loss instead of an optimiser step: nothing changes
            g = torch.autograd.grad(loss, params, allow_unused=True)
            grads.append(torch.cat([(d if d is not None else torch.zeros_like(p)).reshape(-1) for d, p in zip(g, params)]))

        self._cache = None
        try:
            batch = self.sample_codes(self.x_var, grad=not self.method.gated, train=False)
            learn_step(self, batch, self.method.select(batch.advantage, batch.logp), self.method, step=record)
            n = sum(p.numel() for p in params)
            return torch.stack(grads).sum(0) if grads else torch.zeros(n, device=self.device)
        finally:
            self._cache = None

    def gradient_variance(self) -> dict:
        """tr Cov of the encoder's gradient over var_draws draws, from the first draw's offsets so
        that identical draws (a silent gradient) give exactly 0."""
        g = torch.stack([self.encoder_gradient() for _ in range(self.cfg.var_draws)]).double()
        d = g - g[0]
        r = len(g)
        var = ((d.square().sum(0) - d.sum(0).square() / r) / (r - 1)).clamp(min=0).sum().item()
        mean_sq = g.mean(0).square().sum().item()
        return {"encoder_grad_var": var, "encoder_grad_rel_var": var / mean_sq if mean_sq > 0 else None}

    def evaluate(self) -> dict:
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # fixed noise: evaluating never moves training
            torch.manual_seed(EVAL_SEED)
            out = {**self.test_elbo(), **self.gradient_variance()}
        if self.method.estimator.name == "silent":
            out["silent_weight"] = self.silent_weight()
        return out

    def info(self) -> dict:
        return self.info_
