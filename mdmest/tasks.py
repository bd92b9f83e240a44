"""Sampling tasks whose true dependency is known in closed form (the ground truth of the tests and
benchmarks). A task carries its true value, as in the BMI benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from mdmest._validation import check_dims
from mdmest.reference import (
    _blocks,
    _check_cov,
    gaussian_total_correlation,
    gaussian_w2_dependency,
)

__all__ = ["GaussianTask", "correlated_pair", "gaussian_task_with_tc", "equicorrelation_tc"]


@dataclass(frozen=True)
class GaussianTask:
    """K Gaussian views drawn jointly from N(0, cov), split into blocks of sizes ``dims``.

    Attributes
    ----------
    total_correlation : float
        The true total correlation in nats (the mutual information when K = 2).
    w2_dependency : float
        W_2 between the joint and the product of marginals, an upper bound on W_1.
    """

    cov: np.ndarray
    dims: tuple[int, ...]
    name: str = "gaussian"
    total_correlation: float = field(init=False)

    def __post_init__(self) -> None:
        dims = check_dims(self.dims)
        cov = _check_cov(self.cov, dims)
        if np.any(np.linalg.eigvalsh(cov) <= 0):
            raise ValueError("cov must be positive definite")
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "total_correlation", gaussian_total_correlation(cov, dims))

    @property
    def mutual_information(self) -> float:
        """Alias of ``total_correlation`` (the same quantity for two views)."""
        return self.total_correlation

    @property
    def w2_dependency(self) -> float:
        return gaussian_w2_dependency(self.cov, self.dims)

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Draw n joint rows; returns K float32 arrays of shapes (n, d_k)."""
        rng = np.random.default_rng(seed)
        chol = np.linalg.cholesky(self.cov)
        x = rng.standard_normal((n, chol.shape[0])) @ chol.T
        return tuple(x[:, b].astype(np.float32) for b in _blocks(self.dims))


def correlated_pair(rho: float, dim: int) -> GaussianTask:
    """Fig. 1's task: X, Y ∈ R^dim with corr(X_i, Y_j) = ρ δ_ij; MI = −(dim/2)·log(1 − ρ²)."""
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}")
    eye = np.eye(dim)
    cov = np.block([[eye, rho * eye], [rho * eye, eye]])
    return GaussianTask(cov, (dim, dim), name=f"pair(rho={rho}, d={dim})")


def equicorrelation_tc(rho: float, num_views: int, components: int) -> float:
    """TC of K views whose i-th features are equicorrelated with coefficient ρ, for ``components``
    such feature groups: −(m/2)·[(K − 1)·log(1 − ρ) + log(1 + (K − 1)·ρ)]."""
    k = num_views
    return float(-0.5 * components * ((k - 1) * np.log1p(-rho) + np.log1p((k - 1) * rho)))


def gaussian_task_with_tc(tc: float, dims: Sequence[int]) -> GaussianTask:
    """K Gaussian views with total correlation ``tc`` nats.

    Feature i of every view (for i < min(dims)) is equicorrelated across the K views with one
    coefficient ρ, solved so that the TC is exactly ``tc``; remaining features are independent.
    """
    dims = check_dims(dims)
    if tc < 0:
        raise ValueError(f"tc must be >= 0, got {tc}")
    k, m = len(dims), min(dims)
    rho = 0.0
    if tc > 0:
        rho = optimize.brentq(lambda r: equicorrelation_tc(r, k, m) - tc, 0.0, 1.0 - 1e-12)
    cov = np.eye(sum(dims))
    starts = np.cumsum([0, *dims[:-1]])
    for i in range(m):
        idx = starts + i
        cov[np.ix_(idx, idx)] = rho
        cov[idx, idx] = 1.0
    return GaussianTask(cov, dims, name=f"gaussian(tc={tc}, dims={dims})")
