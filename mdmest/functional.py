r"""The bounds as plain functions of critic outputs.

Each function takes the critic's values on the joint rows (``t_joint``, shape (B,)) and on the
product-of-marginals rows (``t_product``, shape (N,)) and returns the bound's value, a 0-dim tensor.
The measure modules in :mod:`mdmest.measures` call these; use them directly to build your own loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mdmest._validation import check_choice

__all__ = [
    "DIVERGENCES",
    "log_mean_exp",
    "effective_sample_fraction",
    "dv_bound",
    "f_bound",
    "f_activation",
    "f_conjugate",
    "wasserstein_bound",
    "gradient_penalty",
    "interpolate",
    "lipschitz_constant",
    "scale_grad",
]

_LOG2 = math.log(2.0)


def log_mean_exp(t: torch.Tensor) -> torch.Tensor:
    """log(mean(exp(t))) computed with logsumexp, stable for any finite t."""
    return torch.logsumexp(t, dim=0) - math.log(t.shape[0])


def effective_sample_fraction(t: torch.Tensor) -> torch.Tensor:
    r"""Kish's effective sample size of the weights :math:`w_i \propto e^{t_i}`, as a fraction of N.

    :math:`(\sum_i w_i)^2 / (N \sum_i w_i^2)`, in [1/N, 1]: 1 when all weights are equal, 1/N when
    one row carries them all. On a critic's product-side scores it says how many rows the DV term
    :math:`\log \mathbb{E}_q[e^T]` really averages over; a small fraction means that term is noisy
    and more product rows (negatives) are needed.

    Examples
    --------
    >>> effective_sample_fraction(torch.zeros(8))
    tensor(1.)
    >>> round(float(effective_sample_fraction(torch.tensor([0.0, 0.0, 0.0, 50.0]))), 3)
    0.25
    """
    return torch.exp(2 * torch.logsumexp(t, dim=0) - torch.logsumexp(2 * t, dim=0)) / t.shape[0]


def dv_bound(t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
    r"""Donsker-Varadhan lower bound on total correlation (paper Eq. 6).

    .. math:: \mathrm{TC} \ge \mathbb{E}_p[T] - \log \mathbb{E}_q[e^T]

    Examples
    --------
    >>> dv_bound(torch.zeros(4), torch.zeros(8))
    tensor(0.)
    """
    return t_joint.mean() - log_mean_exp(t_product)


# For each divergence: the output activation g_f and the composition f*(g_f(v)), written in a form
# that stays finite for |v| <= 80 in float32 (the compositions simplify analytically).
_F_ACTIVATION: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "kl": lambda v: v,
    "reverse_kl": lambda v: -torch.exp(-v),
    "chi2": lambda v: v,
    "hellinger": lambda v: -torch.expm1(-v),
    "js": lambda v: _LOG2 - F.softplus(-v),
}
_F_CONJUGATE_OF_ACTIVATION: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "kl": lambda v: torch.exp(v - 1.0),
    "reverse_kl": lambda v: v - 1.0,
    "chi2": lambda v: 0.25 * v * v + v,
    "hellinger": lambda v: torch.expm1(v),
    "js": lambda v: F.softplus(v) - _LOG2,
}
DIVERGENCES = tuple(_F_ACTIVATION)

_F_CONJUGATE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "kl": lambda t: torch.exp(t - 1.0),
    "reverse_kl": lambda t: -1.0 - torch.log(-t),
    "chi2": lambda t: 0.25 * t * t + t,
    "hellinger": lambda t: t / (1.0 - t),
    "js": lambda t: -torch.log(2.0 - torch.exp(t)),
}


def f_activation(v: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """The output activation g_f of the f-GAN table (Nowozin et al., 2016), mapping a raw score v
    into the domain of the conjugate f*."""
    check_choice("divergence", divergence, DIVERGENCES)
    return _F_ACTIVATION[divergence](v)


def f_conjugate(t: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """The convex conjugate f* of the f-GAN table, on its domain (direct formula, for reference)."""
    check_choice("divergence", divergence, DIVERGENCES)
    return _F_CONJUGATE[divergence](t)


def f_bound(v_joint: torch.Tensor, v_product: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    r"""Variational lower bound on an f-divergence between joint and product (paper Eq. 7).

    .. math:: D_f(p \,\|\, q) \ge \mathbb{E}_p[g_f(V)] - \mathbb{E}_q[f^*(g_f(V))]

    ``v_joint`` and ``v_product`` are raw critic outputs V. With ``divergence="kl"`` this is the NWJ
    bound :math:`\mathbb{E}_p[V] - \mathbb{E}_q[e^{V-1}]`. Valid names: "kl", "reverse_kl", "chi2",
    "hellinger" (squared Hellinger), "js" (Jensen-Shannon).

    Examples
    --------
    >>> f_bound(torch.ones(4), torch.ones(4), "kl")
    tensor(0.)
    """
    check_choice("divergence", divergence, DIVERGENCES)
    return (
        _F_ACTIVATION[divergence](v_joint).mean()
        - _F_CONJUGATE_OF_ACTIVATION[divergence](v_product).mean()
    )


def wasserstein_bound(t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
    r"""Kantorovich-Rubinstein dual of W_1 (paper Eq. 8), a lower bound for a 1-Lipschitz critic.

    .. math:: W_1(p, q) \ge \mathbb{E}_p[T] - \mathbb{E}_q[T]
    """
    return t_joint.mean() - t_product.mean()


def interpolate(
    joint: torch.Tensor,
    product: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random points ε·x_p + (1 − ε)·x_q, ε ~ U(0, 1) per row, between joint and product rows.

    ``product`` (N, D) may hold several negatives per joint row (N a multiple of B): joint rows are
    repeated to pair with them. ``eps`` (N, 1), if given, replaces the draw of ε.
    """
    if product.shape[0] % joint.shape[0]:
        raise ValueError(
            f"product rows ({product.shape[0]}) must be a multiple of joint rows ({joint.shape[0]})"
        )
    joint = joint.repeat(product.shape[0] // joint.shape[0], 1)
    if eps is None:
        eps = torch.rand(
            joint.shape[0], 1, generator=generator, device=joint.device, dtype=joint.dtype
        )
    return eps * joint + (1.0 - eps) * product


def lipschitz_constant(
    critic: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, quantile: float = 1.0
) -> torch.Tensor:
    """The largest gradient norm ‖∇T(x)‖₂ of the critic over ``points`` (N, D): an empirical
    estimate of its Lipschitz constant, from below. With ``quantile`` < 1, that quantile of the
    gradient norms instead (less sensitive to a few points where the slope crept up).

    It works under ``torch.no_grad()`` and ``torch.inference_mode()`` alike: the points are
    cloned into ordinary tensors and the gradient is taken with inference mode off.

    Examples
    --------
    >>> with torch.inference_mode():
    ...     lipschitz_constant(lambda x: 3 * x[:, 0], torch.randn(5, 2))
    tensor(3.)
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must lie in (0, 1], got {quantile}")
    with torch.inference_mode(False), torch.enable_grad():
        points = points.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(points).sum(), points)
    norms = grad.detach().norm(2, dim=1)
    return norms.max() if quantile == 1.0 else torch.quantile(norms, quantile)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    joint: torch.Tensor,
    product: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    one_sided: bool = False,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""WGAN-GP penalty (Gulrajani et al., 2017) on points between joint and product rows.

    .. math:: \mathbb{E}\big[(\|\nabla_x T(\hat x)\|_2 - 1)^2\big],\quad
              \hat x = \epsilon x_p + (1 - \epsilon) x_q,\ \epsilon \sim U(0, 1)

    ``joint`` is (B, D); ``product`` is (N, D) with N a multiple of B (several negatives per joint
    row): joint rows are repeated to pair with them. The graph is kept so the penalty can be
    back-propagated into the critic.

    ``one_sided=True`` penalises only slopes above 1, :math:`\max(0, \|\nabla_x T\|_2 - 1)^2`
    (the "LP" penalty of Petzka et al., 2018): the constraint of W_1's dual is
    :math:`\|T\|_L \le 1`, and the two-sided form also pushes the slope up to 1 where the
    optimal critic is flat. With weak dependency that push wins over the small signal and the critic
    settles on an almost linear function (measured: see docs/results/wasserstein_accuracy.md, "Wasserstein:
    Lipschitz control and scale").

    ``eps`` (N, 1), if given, replaces the draw of ε (see :func:`interpolate`).
    """
    mixed = interpolate(joint, product, generator, eps=eps).detach().requires_grad_(True)
    out = critic(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    excess = grad.norm(2, dim=1) - 1.0
    if one_sided:
        excess = excess.clamp(min=0.0)
    return excess.pow(2).mean()


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    r"""``x`` unchanged in the forward pass; the gradient flowing back through it times ``scale``.

    Put between an encoder and a measure, it weights the measure's gradient for the encoder only:
    the critic behind it still receives the gradient of the measure itself. This is what
    :meth:`mdmest.DependencyMeasure.loss` does, so that the critic's step does not depend on the
    weight in any optimiser (``scale=0`` stops the encoder's gradient; ``scale=-1`` reverses it).

    Examples
    --------
    >>> x = torch.ones(3, requires_grad=True)
    >>> scale_grad(x, 0.1).sum().backward()
    >>> x.grad
    tensor([0.1000, 0.1000, 0.1000])
    """
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return _ScaleGrad.apply(x, scale)
