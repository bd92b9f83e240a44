"""Gaussian tasks: the total correlation of N(0, Σ) in closed form, at a chosen value."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from mdmest._validation import check_dims
from mdmest.reference import (
    _check_cov,
    block_slices,
    gaussian_total_correlation,
    gaussian_w2_dependency,
)
from mdmest.tasks.base import Task, _fmt

__all__ = [
    "GaussianTask",
    "correlated_pair",
    "gaussian_task_with_tc",
    "equicorrelation_tc",
    "sparse_gaussian_task",
    "low_rank_gaussian_task",
    "random_spectrum_gaussian_task",
]


@dataclass(frozen=True)
class GaussianTask(Task):
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
    def w2_dependency(self) -> float:
        return gaussian_w2_dependency(self.cov, self.dims)

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Draw n joint rows; returns K float32 arrays of shapes (n, d_k)."""
        rng = np.random.default_rng(seed)
        chol = np.linalg.cholesky(self.cov)
        x = rng.standard_normal((n, chol.shape[0])) @ chol.T
        return tuple(x[:, b].astype(np.float32) for b in block_slices(self.dims))


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


def _check_tc(tc: float) -> float:
    if not np.isfinite(tc) or tc < 0:
        raise ValueError(f"tc must be a finite number >= 0, got {tc}")
    return float(tc)


def gaussian_task_with_tc(
    tc: float, dims: Sequence[int], *, components: int | None = None
) -> GaussianTask:
    """K Gaussian views with total correlation ``tc`` nats.

    Feature i of every view (for i < ``components``, by default ``min(dims)``) is equicorrelated
    across the K views with one coefficient ρ, solved so that the TC is exactly ``tc``; remaining
    features are independent.
    """
    dims = check_dims(dims)
    tc = _check_tc(tc)
    k = len(dims)
    m = min(dims) if components is None else int(components)
    if not 1 <= m <= min(dims):
        raise ValueError(f"components must lie in [1, min(dims)={min(dims)}], got {components}")
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


def sparse_gaussian_task(tc: float, dims: Sequence[int], strong: int = 2) -> GaussianTask:
    r"""K Gaussian views where only ``strong`` features per view carry the dependence.

    The first ``strong`` features of each view are equicorrelated across views with one coefficient
    ρ (solved so that the TC is ``tc``); the other features are independent noise. With
    ``m = strong`` groups,

    .. math:: \mathrm{TC} = -\frac{m}{2}\big[(K-1)\log(1-\rho) + \log(1+(K-1)\rho)\big].

    Examples
    --------
    >>> task = sparse_gaussian_task(1.0, (5, 5), strong=2)
    >>> task.name, round(task.total_correlation, 9)
    ('sparse_gaussian(tc=1, dims=(5, 5), strong=2)', 1.0)
    """
    dims = check_dims(dims)
    task = gaussian_task_with_tc(tc, dims, components=strong)
    name = f"sparse_gaussian(tc={_fmt(tc)}, dims={dims}, strong={strong})"
    return GaussianTask(task.cov, dims, name=name)


def _solve_scale(tc_of: Callable[[float], float], tc: float, upper: float, what: str) -> float:
    """Root of tc_of(s) = tc on (0, upper], tc_of increasing from tc_of(0) = 0."""
    if tc == 0:
        return 0.0
    top = tc_of(upper)
    if top < tc:
        raise ValueError(f"{what} cannot reach tc={tc} (at most {top:.3f} nats)")
    return optimize.brentq(lambda s: tc_of(s) - tc, 0.0, upper, xtol=1e-14, rtol=1e-15)


def low_rank_gaussian_task(
    tc: float, dims: Sequence[int], rank: int = 2, ridge: float = 1.0, seed: int = 0
) -> GaussianTask:
    r"""K Gaussian views driven by a shared low-rank latent, at total correlation ``tc``.

    ``x_k = A_k z + noise`` with ``z ~ N(0, I_rank)``, ``A`` a (D, rank) standard normal matrix drawn
    from ``seed``, and isotropic noise of variance ``ridge``; the covariance is

    .. math:: \Sigma(s) = s\,A A^\top + \text{ridge}\cdot I,

    with the scale s solved (Brent) so that TC(Σ(s)) = ``tc``.
    """
    dims = check_dims(dims)
    tc = _check_tc(tc)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    d = sum(dims)
    a = np.random.default_rng(seed).standard_normal((d, rank))
    gram = a @ a.T

    def tc_of(s: float) -> float:
        return gaussian_total_correlation(s * gram + ridge * np.eye(d), dims)

    s = _solve_scale(tc_of, tc, 1e12, f"low_rank_gaussian_task(rank={rank})")
    name = f"low_rank_gaussian(tc={_fmt(tc)}, dims={dims}, rank={rank}"
    name += f", seed={seed})" if seed else ")"
    return GaussianTask(s * gram + ridge * np.eye(d), dims, name=name)


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _sym_power(m: np.ndarray, power: float) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * w**power) @ v.T


def random_spectrum_gaussian_task(
    tc: float,
    dims: Sequence[int],
    seed: int = 0,
    eigenvalue_range: tuple[float, float] = (0.1, 10.0),
) -> GaussianTask:
    r"""K Gaussian views with anisotropic views and random cross-view structure, at TC ``tc``.

    Each view's covariance is ``C_k = Q_k diag(λ) Q_kᵀ`` with eigenvalues λ log-uniform over
    ``eigenvalue_range`` and a random rotation ``Q_k``. The cross-view structure comes from a random
    Wishart matrix P whitened block by block, ``R₀ = P_bd^{-1/2} P P_bd^{-1/2}``; with ``E = R₀ − I``
    (zero diagonal blocks) the covariance is

    .. math:: \Sigma(t) = C^{1/2} (I + t E) C^{1/2}, \qquad
              \mathrm{TC}(t) = -\tfrac12 \log\det(I + tE),

    increasing and convex in t on [0, 1/|λ_min(E)|); t is solved (Brent) so that TC = ``tc``.
    """
    dims = check_dims(dims)
    tc = _check_tc(tc)
    lo, hi = eigenvalue_range
    if not 0 < lo <= hi:
        raise ValueError(f"eigenvalue_range must satisfy 0 < low <= high, got {eigenvalue_range}")
    rng = np.random.default_rng(seed)
    d = sum(dims)
    blocks = block_slices(dims)
    g = rng.standard_normal((d, d + 2))
    p = g @ g.T
    white = np.zeros((d, d))
    root = np.zeros((d, d))
    for b, dk in zip(blocks, dims):
        white[b, b] = _sym_power(p[b, b], -0.5)
        q = _random_rotation(rng, dk)
        lam = np.exp(rng.uniform(np.log(lo), np.log(hi), dk))
        root[b, b] = (q * np.sqrt(lam)) @ q.T
    e = white @ p @ white
    e = 0.5 * (e + e.T) - np.eye(d)
    for b in blocks:
        e[b, b] = 0.0
    t_max = -1.0 / np.linalg.eigvalsh(e)[0]

    def tc_of(t: float) -> float:
        return -0.5 * np.linalg.slogdet(np.eye(d) + t * e)[1]

    t = _solve_scale(tc_of, tc, t_max * (1 - 1e-12), "random_spectrum_gaussian_task")
    cov = root @ (np.eye(d) + t * e) @ root
    cov = 0.5 * (cov + cov.T)
    name = f"random_spectrum_gaussian(tc={_fmt(tc)}, dims={dims}"
    name += f", seed={seed})" if seed else ")"
    return GaussianTask(cov, dims, name=name)
