r"""Per-feature maps that leave a KL-type dependency unchanged and make any data easy for a critic.

Total correlation and every f-divergence between the joint and the product of the marginals are
unchanged by an invertible map of each view, so a map fitted on the training rows may be applied to
all rows before the critic sees them. The Gaussian copula map sends each feature through its own
empirical distribution function and then the standard-normal quantile: heavy tails, outliers and
odd scales become plain standard-normal marginals, while the dependency (the copula) is kept.

Wasserstein dependency is not invariant under such maps (its value is in the units of the views),
but it is under a translation of each feature, and it scales with one factor common to all
features: :class:`CommonScale` centres every feature and divides all of them by one number, so the
critic sees rows of unit size, and the value is multiplied back by that number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import chdtri, ndtr, ndtri

__all__ = [
    "CommonScale",
    "GaussianCopula",
    "RadialGaussian",
    "fit_per_view",
    "gaussian_misfit",
    "TRANSFORMS",
    "COPULA_TRANSFORMS",
    "INVARIANT_TRANSFORMS",
    "fit_common_scale",
]

#: Names ``mdmest.estimate(transform=...)`` accepts besides ``None`` and "auto".
TRANSFORMS = ("per_view", "whitened_copula", "copula", "radial", "scale")
#: The names among them of a :class:`GaussianCopula` map (normal marginals).
COPULA_TRANSFORMS = ("whitened_copula", "copula")
#: Those that leave a KL-type dependency unchanged (an invertible map of each view).
INVARIANT_TRANSFORMS = ("per_view", *COPULA_TRANSFORMS, "radial")


@dataclass
class GaussianCopula:
    r"""Rank-to-normal map of each feature, fitted on training rows, applied to any rows.

    For a feature with sorted distinct training values :math:`u_1 < \dots < u_m` held by
    :math:`c_1, \dots, c_m` rows (n in all), value :math:`u_j` maps to

    .. math:: z_j = \Phi^{-1}\Big(\frac{c_1 + \dots + c_{j-1} + (c_j + 1)/2}{n + 1}\Big)

    (its mid-rank over n + 1, so ties share one value and no level reaches 0 or 1). New rows are
    mapped by linear interpolation between the :math:`(u_j, z_j)`, clamped to
    :math:`[z_1, z_m]` outside the training range: a strictly increasing map on the training
    range, hence invertible there, so the dependency among views is unchanged.

    With ``whiten=True`` the mapped rows of the view are then whitened as a whole (ZCA: the
    symmetric inverse square root of their covariance, shrunk toward the identity by
    d / (d + n)), an invertible linear map of the view: dependency carried by directions of small
    variance, or shared by correlated features, is then as easy for a critic to see as any other.

    Examples
    --------
    >>> x = np.array([[1.0], [100.0], [3.0], [3.0]])
    >>> z = GaussianCopula().fit(x).transform(x)
    >>> bool(z[0, 0] < z[2, 0] == z[3, 0] < z[1, 0]), bool(abs(z.mean()) < 1e-12)
    (True, True)
    """

    whiten: bool = False
    knots: list[tuple[np.ndarray, np.ndarray]] | None = None
    mean: np.ndarray | None = None
    whitening: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> GaussianCopula:
        """Fit on ``x`` of shape (n, d): one table of knots per feature (and the whitening)."""
        x = np.asarray(x, dtype=np.float64)
        self.knots = []
        for column in x.T:
            values, levels = _mid_rank_levels(column)
            self.knots.append((values, ndtri(levels)))
        if self.whiten:
            z = self._marginals(x)
            self.mean, self.whitening = z.mean(axis=0), _zca(z)
        return self

    def _marginals(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for j, (values, normal) in enumerate(self.knots):
            out[:, j] = np.interp(x[:, j], values, normal)
        return out

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map ``x`` of shape (n, d), the d of :meth:`fit`; returns float64."""
        if self.knots is None:
            raise RuntimeError("GaussianCopula.transform called before fit")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.knots):
            raise ValueError(
                f"expected rows of {len(self.knots)} features, got shape {tuple(x.shape)}"
            )
        z = self._marginals(x)
        if self.whitening is not None:
            z = (z - self.mean) @ self.whitening
        return z


def _mid_rank_levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``values`` in order and the mid-rank of each over n + 1 (n values in all):
    ties share one level, and no level reaches 0 or 1."""
    distinct, counts = np.unique(values, return_counts=True)
    below = np.cumsum(counts) - counts
    return distinct, (below + (counts + 1) / 2) / (len(values) + 1)


def _zca(z: np.ndarray) -> np.ndarray:
    """The symmetric inverse square root of the covariance of ``z`` (n, d) of features of about
    unit variance, shrunk toward the identity by d / (d + n) so that few rows or repeated
    features still give an invertible map."""
    n, d = z.shape
    shrink = d / (d + n)
    return _inverse_sqrt((1 - shrink) * np.cov(z, rowvar=False).reshape(d, -1) + shrink * np.eye(d))


def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return (vectors / np.sqrt(eigenvalues)) @ vectors.T


def _robust_scale(x: np.ndarray) -> np.ndarray:
    """Each feature's interquartile range over that of a standard normal; its standard deviation
    where the range is 0 (a feature of few values), 1 where that is 0 too."""
    q25, q75 = np.percentile(x, [25, 75], axis=0)
    scale = (q75 - q25) / (2 * ndtri(0.75))
    scale = np.where(scale > 0, scale, x.std(axis=0))
    return np.where(scale > 0, scale, 1.0)


def _tyler_shape(u: np.ndarray, iterations: int = 100, tol: float = 1e-6) -> np.ndarray:
    r"""Tyler's M-estimator of the shape of the rows ``u`` (n, d) about 0: the fixed point of

    .. math:: S = \frac{d}{n} \sum_i \frac{u_i u_i^\top}{u_i^\top S^{-1} u_i}, \quad \mathrm{tr}\, S = d,

    shrunk toward the identity by d / (d + n) at each iteration (so that it stays invertible
    with few rows). Each row counts by its direction only, so a heavy tail or an outlier weighs
    no more than any row: for an elliptical view (a Student-t without a variance) it is the
    shape of the dispersion, where the sample covariance is ruled by the largest rows (Tyler,
    Ann. Statist. 1987)."""
    n, d = u.shape
    shrink = d / (d + n)
    shape = np.eye(d)
    for _ in range(iterations):
        quadratic = np.einsum("ij,jk,ik->i", u, np.linalg.inv(shape), u)
        weights = np.divide(1.0, quadratic, out=np.zeros(n), where=quadratic > 0)
        new = (u * weights[:, None]).T @ u
        new *= d / max(np.trace(new), np.finfo(float).tiny)
        new = (1 - shrink) * new + shrink * np.eye(d)
        done = np.max(np.abs(new - shape)) < tol
        shape = new
        if done:
            break
    return shape


@dataclass
class RadialGaussian:
    r"""A view standardised, whitened, and its radius mapped to that of a standard normal view.

    Each feature is centred and scaled by its training median and interquartile range, the view
    is whitened by the inverse square root of its shape (Tyler's M-estimator, which weighs each
    row by its direction only: heavy tails and outliers do not rule it as they rule a
    covariance), and each row :math:`z` becomes

    .. math:: z \, \frac{F_{\chi_d}^{-1}(\hat F(\lVert z \rVert))}{\lVert z \rVert}

    with :math:`\hat F` the mid-rank distribution function of the training rows' radii
    (interpolated between them, clamped outside) and :math:`F_{\chi_d}` that of the radius of a
    standard normal view of d features: its direction is kept, its radius is made Gaussian
    (radial Gaussianisation, Lyu & Simoncelli, 2009). An elliptical view (a multivariate
    Student-t, whose heavy tails are one random scale shared by all its features) becomes a
    standard normal one; the map is invertible on the training range, so the dependency among
    views is unchanged. The per-feature copula instead spreads that shared scale over every
    feature. ``estimate``'s default, ``transform="per_view"``, gives it to each view it leaves
    closer to normal than the copula does (:func:`fit_per_view`; measured in
    docs/benchmarks.md).

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_t(2, size=(2000, 3))
    >>> z = RadialGaussian().fit(x).transform(x)
    >>> bool(abs(np.mean(np.sum(z**2, axis=1)) - 3) < 0.1)
    True
    """

    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    whitening: np.ndarray | None = None
    knots: tuple[np.ndarray, np.ndarray] | None = None

    def fit(self, x: np.ndarray) -> RadialGaussian:
        """Fit on ``x`` of shape (n, d): the standardisation, the whitening, the radii's knots."""
        x = np.asarray(x, dtype=np.float64)
        self.center = np.median(x, axis=0)
        self.scale = _robust_scale(x)
        u = (x - self.center) / self.scale
        self.whitening = _inverse_sqrt(_tyler_shape(u))
        radii, levels = _mid_rank_levels(np.linalg.norm(u @ self.whitening, axis=1))
        self.knots = (radii, np.sqrt(chdtri(x.shape[1], 1 - levels)))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map ``x`` of shape (n, d), the d of :meth:`fit`; returns float64."""
        if self.knots is None:
            raise RuntimeError("RadialGaussian.transform called before fit")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.center.shape[0]:
            raise ValueError(
                f"expected rows of {self.center.shape[0]} features, got shape {tuple(x.shape)}"
            )
        z = ((x - self.center) / self.scale) @ self.whitening
        radius = np.linalg.norm(z, axis=1)
        target = np.interp(radius, *self.knots)
        ratio = np.divide(target, radius, out=np.zeros_like(radius), where=radius > 0)
        return z * ratio[:, None]


def gaussian_misfit(z: np.ndarray) -> float:
    """How far rows ``z`` (n, d) are from a standard normal view: the Kolmogorov-Smirnov
    distance of their radii from a χ with d degrees of freedom plus the mean of that of each
    feature from N(0, 1). Each of :class:`RadialGaussian` and the whitened
    :class:`GaussianCopula` makes one of the two terms about 0 on its training rows; the other
    is small only where the view is of the shape the map undoes (elliptical; a Gaussian copula)."""
    z = np.asarray(z, dtype=np.float64)
    radii = _ks_distance(stats.chi(z.shape[1]).cdf(np.linalg.norm(z, axis=1))[:, None])
    return float(radii[0] + _ks_distance(ndtr(z)).mean())


def _ks_distance(cdf_values: np.ndarray) -> np.ndarray:
    """Per column, the largest distance between the empirical distribution of the values
    (already through the hypothesised CDF) and the uniform one: the statistic of
    ``scipy.stats.ks_1samp`` (equal to 1e-16), without its p-values, which cost 18 times as
    long on 7,000 rows of 32 features and would run twice per view in every ``estimate``."""
    u = np.sort(cdf_values, axis=0)
    n = len(u)
    steps = np.arange(1, n + 1)[:, None] / n
    return np.maximum(steps - u, u - (steps - 1 / n)).max(axis=0)


def fit_per_view(rows: np.ndarray) -> GaussianCopula | RadialGaussian:
    """The whitened :class:`GaussianCopula` or the :class:`RadialGaussian` map fitted on a view's
    training ``rows`` (n, d), whichever leaves them closer to a standard normal view
    (:func:`gaussian_misfit`; the copula on ties): the copula undoes a monotone distortion of
    each feature, the radial map a scale shared by all features (heavy tails of an elliptical
    view), and neither undoes the other's."""
    copula = GaussianCopula(whiten=True).fit(rows)
    radial = RadialGaussian().fit(rows)
    if gaussian_misfit(radial.transform(rows)) < gaussian_misfit(copula.transform(rows)):
        return radial
    return copula


@dataclass
class CommonScale:
    r"""One view's rows centred per feature and divided by a scale shared by all views.

    Fitted with :func:`fit_common_scale`. The Wasserstein dependency (Euclidean cost on the
    concatenated views) is unchanged by the translation and multiplied by ``1 / scale`` by the
    division, so a value computed on the mapped rows times ``scale`` is the value of the rows as
    given: a critic trained on rows of unit size, where its Lipschitz constraint and learning rate
    work, reports the views' own units.

    Examples
    --------
    >>> x, y = np.array([[0.0], [2e6]]), np.array([[1e6], [3e6]])
    >>> maps = fit_common_scale([x, y])
    >>> maps[0].scale, maps[0].transform(x).ravel().tolist(), maps[1].transform(y).ravel().tolist()
    (1000000.0, [-1.0, 1.0], [-1.0, 1.0])
    """

    mean: np.ndarray
    scale: float

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map ``x`` of shape (n, d), the d of the fitted view; returns float64."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"expected rows of {self.mean.shape[0]} features, got shape {tuple(x.shape)}"
            )
        return (x - self.mean) / self.scale


def fit_common_scale(views: list[np.ndarray]) -> list[CommonScale]:
    """One :class:`CommonScale` per view, fitted on its training rows: each feature's mean, and
    the root of the mean variance over all features of all views as the common scale (1 when
    every feature is constant)."""
    arrays = [np.asarray(v, dtype=np.float64) for v in views]
    variances = np.concatenate([a.var(axis=0) for a in arrays])
    scale = float(np.sqrt(variances.mean()))
    if not (np.isfinite(scale) and scale > 0):
        scale = 1.0
    return [CommonScale(mean=a.mean(axis=0), scale=scale) for a in arrays]
