"""The VAE's parts: two latent kinds, an MLP encoder, two decoders, and the closed forms.

A *code* is what the encoder's output means:
- `GaussianCode`: D dimensions, q(z|x) = N(mu, diag(s^2)) from the encoder's 2D outputs
  (mu, log s^2), prior N(0, I);
- `CategoricalCode`: D independent variables of K classes from D*K logits, prior uniform;
  the decoder reads the concatenated one-hots (D*K inputs).
Each knows its KL to the prior (closed form), how to sample without gradient (the score-
function estimators), with gradient (reparam, Gumbel-Softmax), log q of a sample per latent
variable, and the trace term of the linear decoder's closed form.

Decoders:
- `BernoulliDecoder`: an MLP code -> 784 logits, log p(x|z) = -BCE summed over pixels;
- `LinearGaussianDecoder`: x ~ N(W z + b, sigma^2 I) with a learned scalar log sigma^2
  (ours: the paper's observation model is not known). Its expected log-likelihood under q
  is analytic (docs/papers.md):
    E_q[log N(x; Wz + b, sigma^2 I)] = -(P/2) log(2 pi sigma^2)
                                        - (||x - W E[z] - b||^2 + tr(W Cov[z] W^T)) / (2 sigma^2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks import sample_categorical
from ..tasks.mnist import mlp

PIXELS = 784
LOG_2PI = math.log(2 * math.pi)


def scale_grad(x: torch.Tensor, a: float) -> torch.Tensor:
    """x in the forward pass, exactly; a times its gradient in the backward pass."""
    if a == 1:
        return x
    d = x.detach()
    return d + a * (x - d) if a else d


class GaussianCode:
    kind = "gaussian"

    def __init__(self, dim: int):
        self.dim, self.width, self.outputs = dim, dim, 2 * dim

    @staticmethod
    def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = params.chunk(2, -1)
        return mu, logvar.clamp(-12, 8)  # s in [0.0025, 55]: no overflow in exp, no zero variance

    def kl(self, params: torch.Tensor) -> torch.Tensor:
        """KL(q || N(0, I)) per row: [B]."""
        mu, logvar = self.split(params)
        return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)

    def rsample(self, params: torch.Tensor, samples: int) -> torch.Tensor:
        """z = mu + s * eps, [B, S, D], differentiable in params (the reparameterisation trick)."""
        mu, logvar = self.split(params)
        eps = torch.randn(mu.shape[0], samples, mu.shape[1], device=mu.device, dtype=mu.dtype)
        return mu[:, None] + (0.5 * logvar).exp()[:, None] * eps

    def sample(self, params: torch.Tensor, samples: int) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(params, samples)

    def logq(self, params: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) per dimension: params [B, 2D], z [B, S, D] -> [B, S, D] (a log density)."""
        mu, logvar = self.split(params)
        mu, logvar = mu[:, None], logvar[:, None]
        return -0.5 * (LOG_2PI + logvar + (z - mu).square() / logvar.exp())

    def decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def trace(self, weight: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """tr(W Cov[z] W^T) = sum_j s_j^2 ||W[:, j]||^2 per row: [B]."""
        return self.split(params)[1].exp() @ weight.square().sum(0)


class CategoricalCode:
    kind = "categorical"

    def __init__(self, dim: int, classes: int):
        self.dim, self.classes = dim, classes
        self.width = self.outputs = dim * classes

    def log_probs(self, params: torch.Tensor) -> torch.Tensor:
        return params.unflatten(-1, (self.dim, self.classes)).log_softmax(-1)  # [B, D, K]

    def kl(self, params: torch.Tensor) -> torch.Tensor:
        """KL(q || uniform) = sum_d sum_k q log q + D log K, per row: [B]."""
        lp = self.log_probs(params)
        return (lp.exp() * lp).sum((-2, -1)) + self.dim * math.log(self.classes)

    def sample(self, params: torch.Tensor, samples: int) -> torch.Tensor:
        """Class indices [B, S, D], no gradient."""
        with torch.no_grad():
            probs = self.log_probs(params).exp()
            return sample_categorical(probs[:, None].expand(-1, samples, -1, -1))

    def logq(self, params: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z_d|x) per variable: params [B, D*K], z [B, S, D] indices -> [B, S, D]."""
        lp = self.log_probs(params)[:, None].expand(-1, z.shape[1], -1, -1)
        return lp.gather(-1, z[..., None])[..., 0]

    def decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        """The concatenated one-hots [..., D*K] of class indices [..., D]."""
        return F.one_hot(z, self.classes).to(torch.get_default_dtype()).flatten(-2)

    def gumbel(self, params: torch.Tensor, samples: int, tau: float, hard: bool) -> torch.Tensor:
        """Gumbel-Softmax [B, S, D*K]: softmax((log q + g) / tau), g ~ Gumbel(0, 1); `hard`: the
        one-hot of its argmax forward (an exact draw from q), the relaxed sample's gradient backward."""
        lp = self.log_probs(params)[:, None].expand(-1, samples, -1, -1)
        u = torch.rand_like(lp).clamp_(1e-10, 1 - 1e-7)
        y = ((lp - (-u.log()).log()) / tau).softmax(-1)
        if hard:
            one_hot = F.one_hot(y.argmax(-1), self.classes).to(y.dtype)
            y = one_hot + (y - y.detach())  # forward: exactly one_hot (y - y.detach() is 0)
        return y.flatten(-2)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.log_probs(params).exp().flatten(-2)

    def trace(self, weight: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """tr(W Cov[z] W^T) = sum_d (sum_k q_dk ||W_dk||^2 - ||W_d q_d||^2) per row: [B],
        Cov[z_d] = diag(q_d) - q_d q_d^T, the variables independent."""
        q = self.log_probs(params).exp()  # [B, D, K]
        w = weight.unflatten(1, (self.dim, self.classes))  # [P, D, K]
        gram = torch.einsum("pdk,pdl->dkl", w, w)  # W_d^T W_d: [D, K, K]
        first = (q * torch.diagonal(gram, dim1=-2, dim2=-1)).sum((-2, -1))
        second = torch.einsum("bdk,dkl,bdl->b", q, gram, q)
        return first - second


def make_code(cfg) -> GaussianCode | CategoricalCode:
    kind = getattr(cfg.latent, "value", cfg.latent)
    return GaussianCode(cfg.latent_dim) if kind == "gaussian" else CategoricalCode(cfg.latent_dim, cfg.classes)


class BernoulliDecoder(nn.Module):
    """The nonlinear decoder: an MLP code -> pixel logits, Bernoulli likelihood."""

    def __init__(self, width: int, hidden: list[int]):
        super().__init__()
        self.net = mlp([width, *reversed(hidden), PIXELS])

    def loglik(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per row: x [N, 784] in {0, 1}, z [N, width] -> [N]."""
        return -F.binary_cross_entropy_with_logits(self.net(z), x, reduction="none").sum(-1)


class LinearGaussianDecoder(nn.Module):
    """x ~ N(W z + b, sigma^2 I): the decoder whose expectation under q has a closed form."""

    def __init__(self, width: int, init_var: float = 0.1):
        super().__init__()
        self.linear = nn.Linear(width, PIXELS)
        self.log_var = nn.Parameter(torch.tensor(math.log(init_var)))  # log sigma^2, learned

    def _loglik(self, sq_error: torch.Tensor) -> torch.Tensor:
        return -0.5 * (PIXELS * (LOG_2PI + self.log_var) + sq_error / self.log_var.exp())

    def loglik(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; W z + b, sigma^2 I) per row of a sampled code: [N]."""
        return self._loglik((x - self.linear(z)).square().sum(-1))

    def expected_loglik(self, x: torch.Tensor, code, params: torch.Tensor) -> torch.Tensor:
        """E_q[log N(x; W z + b, sigma^2 I)] per row in closed form: no sample, no variance. [B]"""
        mean_error = (x - self.linear(code.mean(params))).square().sum(-1)
        return self._loglik(mean_error + code.trace(self.linear.weight, params))


class VAE(nn.Module):
    """Encoder, decoder, and (method=silent with the MLP decoder) the linear decoder beside it."""

    def __init__(self, cfg, init_var: float = 0.1, aux_linear: bool = False):
        super().__init__()
        self.code = make_code(cfg)
        hidden = list(cfg.hidden)
        self.encoder = mlp([PIXELS, *hidden, self.code.outputs])
        linear = getattr(cfg.decoder, "value", cfg.decoder) == "linear"
        self.decoder = LinearGaussianDecoder(self.code.width, init_var) if linear \
            else BernoulliDecoder(self.code.width, hidden)
        # the silent gradient's linear decoder: the decoder itself when it is linear
        self.linear = self.decoder if linear else LinearGaussianDecoder(self.code.width, init_var) \
            if aux_linear else None
