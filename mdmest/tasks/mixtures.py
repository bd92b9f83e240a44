"""Gaussian mixtures with diagonal-plus-low-rank components, their exact densities, and the
Monte Carlo total correlation that :mod:`mdmest.tasks.random` reports as the truth of its mixture
tasks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from mdmest.reference import block_slices
from mdmest.tasks.base import Task, _check_n, _split

__all__ = ["MixtureTask"]

_PILOT_ROWS = 2000  # cheap Monte Carlo for the bisection
_MC_MIN_ROWS = 20_000
_MC_MAX_ROWS = 1_000_000
_MC_FLOP_BUDGET = 1.2e9  # caps the full Monte Carlo's rows for costly mixtures
_MC_REL_SE = 0.01
_CHUNK = 20_000


# --------------------------------------------------------------------------------------------------


def _log_mixture(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, diag: np.ndarray, factors: np.ndarray
) -> np.ndarray:
    r"""log Σ_c w_c N(x; m_c, diag(λ_c) + U_c U_cᵀ) for rows x (n, d); ``factors`` (C, d, r).

    Woodbury: with P = Λ⁻¹U and L Lᵀ = I + UᵀΛ⁻¹U, the quadratic form is
    Σ_j (x − m)_j²/λ_j − ‖L⁻¹Pᵀ(x − m)‖², and log det = Σ log λ + 2 Σ log diag L.
    """
    n, d = x.shape
    c, _, r = factors.shape
    inv = 1.0 / diag  # (C, d)
    quad = (x * x) @ inv.T - 2.0 * x @ (means * inv).T + np.sum(means * means * inv, axis=1)
    logdet = np.sum(np.log(diag), axis=1)
    if r:
        p = factors * inv[:, :, None]  # (C, d, r)
        gram = np.eye(r) + factors.transpose(0, 2, 1) @ p
        chol = np.linalg.cholesky(gram)
        logdet = logdet + 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        t = (x @ p.transpose(1, 0, 2).reshape(d, c * r)).reshape(n, c, r)
        t -= np.einsum("cd,cdr->cr", means, p)[None]
        # s = L⁻¹ t per component, as one (n, C·r) @ (C·r, C·r) block-diagonal product.
        inv_t = linalg.block_diag(*np.linalg.inv(chol).transpose(0, 2, 1))
        s = t.reshape(n, c * r) @ inv_t
        quad -= (s * s) @ np.repeat(np.eye(c), r, axis=0)  # sum over each component's r
    log_terms = np.log(weights)[None] - 0.5 * (d * np.log(2 * np.pi) + logdet[None] + quad)
    top = log_terms.max(axis=1)
    return top + np.log(np.exp(log_terms - top[:, None]).sum(axis=1))


@dataclass(frozen=True, eq=False)
class _Mixture:
    """Σ_c w_c N(m_c, diag(λ_c) + U_c U_cᵀ) over D = Σ dims features (latent coordinates)."""

    weights: np.ndarray  # (C,)
    means: np.ndarray  # (C, D)
    diag: np.ndarray  # (C, D), > 0
    factors: np.ndarray  # (C, D, r)
    dims: tuple[int, ...]

    def pointwise_tc(self, x: np.ndarray) -> np.ndarray:
        """log p(x) − Σ_k log p_k(x_k), row by row (its mean under p is the TC)."""
        out = np.empty(len(x))
        for s in range(0, len(x), _CHUNK):
            xs = x[s : s + _CHUNK]
            value = _log_mixture(xs, self.weights, self.means, self.diag, self.factors)
            for b in block_slices(self.dims):
                value -= _log_mixture(
                    xs[:, b], self.weights, self.means[:, b], self.diag[:, b], self.factors[:, b]
                )
            out[s : s + _CHUNK] = value
        return out

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        labels, e, f = _draw_noise(rng, n, self.weights, self.means.shape[1], self.factors.shape[2])
        return self.from_noise(labels, e, f)

    def from_noise(self, labels: np.ndarray, e: np.ndarray, f: np.ndarray) -> np.ndarray:
        x = np.empty_like(e)
        for c in range(len(self.weights)):
            idx = labels == c
            x[idx] = self.means[c] + np.sqrt(self.diag[c]) * e[idx] + f[idx] @ self.factors[c].T
        return x

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and per-feature standard deviation."""
        mean = self.weights @ self.means
        var_c = self.diag + np.sum(self.factors**2, axis=2)
        second = self.weights @ (var_c + self.means**2)
        return mean, np.sqrt(second - mean**2)

    def flops_per_row(self) -> float:
        """A cost model of :meth:`pointwise_tc` per row: the products, and the per-component
        work of the K + 1 densities."""
        c, d, r = self.factors.shape
        return 4.0 * c * (3 + r) * d + (len(self.dims) + 1) * c * (40 + 2 * r)


def _draw_noise(rng: np.random.Generator, n: int, weights: np.ndarray, d: int, r: int):
    labels = rng.choice(len(weights), size=n, p=weights)
    return labels, rng.standard_normal((n, d)), rng.standard_normal((n, r))


def _mc_truth(mixture: _Mixture, rng: np.random.Generator) -> tuple[float, float, int]:
    """(mean, standard error, rows) of the pointwise TC over fresh samples."""
    pilot = mixture.pointwise_tc(mixture.sample(rng, _PILOT_ROWS))
    value, sd = float(pilot.mean()), float(pilot.std())
    need = (sd / (_MC_REL_SE * max(abs(value), 0.05))) ** 2
    cap = max(_MC_MIN_ROWS, int(_MC_FLOP_BUDGET / mixture.flops_per_row()))
    rows = int(np.clip(need * 1.1, _MC_MIN_ROWS, min(cap, _MC_MAX_ROWS)))
    values = mixture.pointwise_tc(mixture.sample(rng, rows))
    return float(values.mean()), float(values.std() / np.sqrt(rows)), rows


@dataclass(frozen=True, eq=False)
class MixtureTask(Task):
    r"""K views of a Gaussian mixture, with a per-view affine map applied when sampling.

    The latent rows follow Σ_c w_c N(m_c, diag(λ_c) + U_c U_cᵀ); view k of a sample is
    ``z_k @ A_kᵀ + b_k``. Invertible per-view maps leave the total correlation unchanged, so the
    truth is computed on the latent rows: a Monte Carlo mean of the exact pointwise value with its
    standard error ``truth_stderr`` (``truth_rows`` samples).
    """

    mixture: _Mixture
    maps: tuple[tuple[np.ndarray, np.ndarray], ...]
    total_correlation: float
    truth_stderr: float
    truth_rows: int
    name: str = "mixture"
    dims: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.mixture.dims))

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
        n = _check_n(n)
        z = self.mixture.sample(np.random.default_rng(seed), n)
        views = [z[:, b] @ a.T + shift for b, (a, shift) in zip(block_slices(self.dims), self.maps)]
        return _split(np.concatenate(views, axis=1), self.dims)
