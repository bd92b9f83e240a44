"""Closed forms and non-neural references, the ground truth the neural estimators are checked on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import linalg

from mdmest._validation import check_choice, check_dims

__all__ = [
    "block_slices",
    "gaussian_mutual_information",
    "gaussian_total_correlation",
    "gaussian_w2_dependency",
    "wasserstein_dependency",
]


def gaussian_mutual_information(rho: float, dim: int) -> float:
    r"""MI of X, Y ∈ R^d with corr(X_i, Y_j) = ρ δ_ij (Fig. 1's setting), in nats.

    .. math:: I(X; Y) = -\frac{d}{2} \log(1 - \rho^2)

    Examples
    --------
    >>> round(gaussian_mutual_information(0.5, 2), 4)
    0.2877
    """
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}")
    return float(-0.5 * dim * np.log1p(-rho * rho))


def block_slices(dims: Sequence[int]) -> list[slice]:
    """The column slice of each view in rows that concatenate views of widths ``dims``.

    Examples
    --------
    >>> block_slices([2, 3])
    [slice(0, 2, None), slice(2, 5, None)]
    """
    edges = np.cumsum([0, *dims]).tolist()
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _check_cov(cov: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    cov = np.asarray(cov, dtype=np.float64)
    dims = check_dims(dims)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] != sum(dims):
        raise ValueError(f"cov must be square of size sum(dims)={sum(dims)}, got shape {cov.shape}")
    return cov


def gaussian_total_correlation(cov: np.ndarray, dims: Sequence[int]) -> float:
    r"""Total correlation of N(0, Σ) split into K blocks of sizes ``dims``, in nats.

    .. math:: \mathrm{TC} = \tfrac12 \big(\textstyle\sum_k \log\det \Sigma_{kk} - \log\det\Sigma\big)

    Examples
    --------
    >>> round(gaussian_total_correlation(np.array([[1.0, 0.5], [0.5, 1.0]]), [1, 1]), 4)
    0.1438
    """
    cov = _check_cov(cov, dims)
    logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return float(0.5 * (sum(logdet(cov[b, b]) for b in block_slices(dims)) - logdet(cov)))


def gaussian_w2_dependency(cov: np.ndarray, dims: Sequence[int]) -> float:
    r"""W_2 between N(0, Σ) and the product of its marginals N(0, Σ_bd), an upper bound on W_1.

    .. math:: W_2^2 = \operatorname{tr}\Sigma + \operatorname{tr}\Sigma_{bd}
              - 2 \operatorname{tr}\big((\Sigma_{bd}^{1/2} \Sigma \Sigma_{bd}^{1/2})^{1/2}\big)
    """
    cov = _check_cov(cov, dims)
    block_diag = np.zeros_like(cov)
    for b in block_slices(dims):
        block_diag[b, b] = cov[b, b]
    root = linalg.sqrtm(block_diag).real
    cross = linalg.sqrtm(root @ cov @ root).real
    w2_squared = np.trace(cov) + np.trace(block_diag) - 2.0 * np.trace(cross)
    return float(np.sqrt(max(w2_squared, 0.0)))


def wasserstein_dependency(
    *views: np.ndarray,
    method: str = "emd",
    n_projections: int = 200,
    seed: int = 0,
    num_itermax: int = 1_000_000,
) -> float:
    r"""Empirical W_1 between the joint rows and one per-view shuffle of them (POT).

    ``method="emd"`` solves the exact optimal transport with Euclidean cost between the n joint rows
    and n shuffled rows, uniform weights (``ot.emd2``); ``"sliced"`` uses the sliced Wasserstein
    distance (``ot.sliced_wasserstein_distance``), cheap for large n. The exact value carries a
    sample-size bias that grows fast with dimension: compare with a neural estimate in low dimension
    and report the same reference on independent views beside it.
    """
    import ot

    check_choice("method", method, ("emd", "sliced"))
    if len(views) < 2:
        raise ValueError(f"need at least 2 views, got {len(views)}")
    arrays = [np.asarray(v, dtype=np.float64) for v in views]
    arrays = [a.reshape(-1, 1) if a.ndim == 1 else a for a in arrays]
    n = arrays[0].shape[0]
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"view {i + 1} must have shape ({n}, d), got {a.shape}")
    rng = np.random.default_rng(seed)
    joint = np.concatenate(arrays, axis=1)
    product = np.concatenate([arrays[0]] + [a[rng.permutation(n)] for a in arrays[1:]], axis=1)
    if method == "sliced":
        return float(
            ot.sliced_wasserstein_distance(joint, product, n_projections=n_projections, seed=seed)
        )
    weights = np.full(n, 1.0 / n)
    cost = ot.dist(joint, product, metric="euclidean")
    return float(ot.emd2(weights, weights, cost, numItermax=num_itermax))
