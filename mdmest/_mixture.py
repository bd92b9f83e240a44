"""A Gaussian mixture with full or block-diagonal covariances fitted by expectation-maximisation
(Dempster, Laird and Rubin, 1977), in float64 torch: what
:class:`mdmest.critics.GaussianMixtureCritic` is fitted with (scikit-learn's ``GaussianMixture``
fits the full one, but it is not a core dependency, and it has no block-diagonal covariance)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Mixture:
    """Weights (C,), means (C, D) and covariances (C, D, D) of a fitted mixture, float64."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    log_likelihood: float  # mean per row on the rows it was fitted on
    iterations: int


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007): each centre a row drawn with
    probability proportional to its squared distance to the nearest centre so far."""
    first = torch.randint(len(x), (1,), generator=generator)
    centres = [x[first[0]]]
    nearest = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = nearest.sum()
        if not total > 0:  # fewer distinct rows than centres
            pick = torch.randint(len(x), (1,), generator=generator)[0]
        else:
            pick = torch.multinomial(nearest / total, 1, generator=generator)[0]
        centres.append(x[pick])
        nearest = torch.minimum(nearest, ((x - x[pick]) ** 2).sum(1))
    return torch.stack(centres)


def _lloyd(x: torch.Tensor, centres: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """A few Lloyd iterations from ``centres``; the label of each row."""
    for _ in range(iterations):
        labels = torch.cdist(x, centres).argmin(1)
        counts = torch.bincount(labels, minlength=len(centres)).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        filled = counts > 0  # an empty cluster keeps its centre
        centres = torch.where(filled[:, None], sums / counts.clamp(min=1)[:, None], centres)
    return torch.cdist(x, centres).argmin(1)


def log_gaussians(x: torch.Tensor, means: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """log N(x_i; μ_c, L_c L_cᵀ) for every row i and component c, (n, C), from the Cholesky
    factors ``factors`` (C, D, D)."""
    n, d = x.shape
    centred = (x[None] - means[:, None]).transpose(1, 2)  # (C, D, n)
    z = torch.linalg.solve_triangular(factors, centred, upper=False)  # (C, D, n)
    log_det = torch.log(torch.diagonal(factors, dim1=1, dim2=2)).sum(1)  # (C,)
    return (-0.5 * (z * z).sum(1) - log_det[:, None]).T - 0.5 * d * math.log(2 * math.pi)


def fit_mixture(
    x: torch.Tensor,
    components: int,
    *,
    reg: float = 1e-3,
    iterations: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    blocks: Sequence[int] | None = None,
) -> Mixture:
    """EM for a ``components``-component Gaussian mixture on the rows ``x`` (n, D), started from
    k-means++ and a few Lloyd iterations; ``reg`` is added to every covariance's diagonal (in the
    units of the features, which :func:`mdmest.estimate` has made of unit variance). Stops when
    the mean log-likelihood per row gains less than ``tol``.

    ``blocks``: sizes of consecutive groups of features (summing to D) whose covariance each
    component keeps, zero between groups: the groups are independent given the component (a
    latent-class model; for the views of a total correlation, the dependency is all in the
    component label). ``None``: full covariances."""
    x = x.to(torch.float64)
    n, d = x.shape
    groups = [d] if blocks is None else [int(b) for b in blocks]
    if sum(groups) != d or min(groups) < 1:
        raise ValueError(
            f"blocks must be group sizes >= 1 summing to the {d} features, got {list(blocks)}"
        )
    slices = [slice(a - b, a) for a, b in zip(itertools.accumulate(groups), groups)]
    generator = torch.Generator().manual_seed(seed)
    labels = _lloyd(x, _kmeans_pp(x, components, generator))
    resp = torch.nn.functional.one_hot(labels, components).to(x.dtype)
    previous = -math.inf
    for iteration in range(1, iterations + 1):
        counts = resp.sum(0) + 10 * torch.finfo(x.dtype).eps
        weights = counts / n
        means = (resp.T @ x) / counts[:, None]
        # One block at a time: a block-diagonal covariance's density is the product of its
        # blocks' (and its cost the sum of theirs, not that of the whole).
        covariances = x.new_zeros(components, d, d)
        log_density = 0
        for block in slices:
            part, centre = x[:, block], means[:, block]
            centred = part[None] - centre[:, None]  # (C, n, d_b)
            cov = torch.einsum("cnd,nc,cne->cde", centred, resp, centred) / counts[:, None, None]
            cov = cov + reg * torch.eye(part.shape[1], dtype=x.dtype)
            covariances[:, block, block] = cov
            log_density = log_density + log_gaussians(part, centre, torch.linalg.cholesky(cov))
        joint = torch.log(weights) + log_density
        log_likelihood = torch.logsumexp(joint, 1)
        resp = torch.exp(joint - log_likelihood[:, None])
        mean = float(log_likelihood.mean())
        fitted = Mixture(weights, means, covariances, mean, iteration)
        if mean - previous < tol:
            break
        previous = mean
    return fitted
