"""Bounds that need no training (from the views' sizes; of a Gaussian fitted in the copula
transform), and the check that views are (nearly) functions of each other."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special, stats

from mdmest import functional as Fn
from mdmest.critics import GaussianCritic, GaussianMixtureCritic, _canonical
from mdmest.estimation.config import EstimateConfig
from mdmest.estimation.evaluation import _evaluate
from mdmest.estimation.recipes import _noise_floor
from mdmest.measures import TotalCorrelation

__all__ = [
    "mixture_critic",
    "gaussian_bound",
    "size_bound",
    "size_dependence",
    "max_canonical_correlation",
]

_DEFAULTS = EstimateConfig()


def _size_scores(views) -> np.ndarray:
    """Normal scores of the views' mean squares (‖x_k‖² / d_k), one column per view of more than
    one size."""
    sizes = np.stack([np.mean(np.square(v), axis=1) for v in views], axis=1)
    sizes = sizes[:, np.ptp(sizes, axis=0) > 0]  # a view of one size shows nothing
    return _normal_scores(sizes)


def _normal_scores(columns: np.ndarray) -> np.ndarray:
    """Each column's mid-ranks over n + 1, mapped through the inverse normal CDF."""
    return special.ndtri(stats.rankdata(columns, axis=0) / (len(columns) + 1))


def _copula_tc(scores: np.ndarray) -> float:
    """−½ log det of the correlation of the columns (+inf when it is singular)."""
    if scores.shape[1] < 2:
        return 0.0
    with np.errstate(all="ignore"):
        sign, logdet = np.linalg.slogdet(np.corrcoef(scores, rowvar=False))
    return float(-0.5 * logdet) if sign > 0 and math.isfinite(logdet) else math.inf


def _null_mean(k: int, rows: int) -> float:
    """The mean of :func:`size_dependence` over ``rows`` rows of ``k`` independent views."""
    return k * (k - 1) / (4 * rows)


def size_dependence(views) -> float:
    """How much dependency the views' sizes alone show, in nats: the Gaussian-copula total
    correlation of the K mean squares (‖x_k‖² / d_k), −½ log det of the correlation of their
    normal scores, less its mean under independence. Where it exceeds what an overfit critic
    read, the refit is a critic that also reads the sizes: heavy tails shared across views
    (multivariate Student-t pairs: 80–95% of the true value); about 0 for Gaussian views."""
    scores = _size_scores(views)
    return _copula_tc(scores) - _null_mean(scores.shape[1], len(scores))


def size_bound(views, seed: int = 0, config: EstimateConfig = _DEFAULTS) -> tuple[float, float]:
    """A lower bound on the total correlation of the views from their sizes alone, in nats, and
    its standard error (a bootstrap over the rows).

    The value is the Gaussian-copula TC of the views' mean squares less its mean under
    independence, K(K−1)/(4n) for K sizes and n rows. It bounds the total correlation from
    below: the TC of the views is at least that of any one function of each view (data
    processing), here the normal score of its size, and among variables with normal marginals
    and a given correlation the Gaussian has the least TC. It is exact where the views share
    nothing but a random scale (spherical heavy tails, as in a multivariate Student-t) and about
    0 for Gaussian views. NaN where fewer than two views have continuous sizes, the sizes are
    identical, or the rows are fewer than ``config.closed_form_min_rows``.
    """
    scores = _size_scores(views)
    rows, k = scores.shape
    distinct = [len(np.unique(column)) for column in scores.T]
    if (
        k < 2
        or rows < config.closed_form_min_rows
        or min(distinct) < config.size_bound_distinct * rows
    ):
        return math.nan, math.nan
    value = _copula_tc(scores)
    if not math.isfinite(value):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    resampled = [
        _copula_tc(_normal_scores(scores[pick]))
        for pick in rng.integers(0, rows, size=(config.size_bound_resamples, rows))
    ]
    return value - _null_mean(k, rows), float(np.std(resampled, ddof=1))


class GaussianDV(TotalCorrelation):
    """The DV bound with its product term log E_q[e^T] taken as at least 0, its value for a
    critic that is a density ratio: for the Gaussian log-ratio under strong dependency, e^T on
    product rows is so heavy-tailed that their log-mean-exp falls short of it (4 views of 5
    features at 8 nats: +3.7% over the truth on average, against −0.03% with the floor)."""

    def bound(self, t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
        return t_joint.mean() - Fn.log_mean_exp(t_product).clamp(min=0.0)


def gaussian_measure(train_views, seed: int = 0) -> GaussianDV | None:
    """The DV measure of the Gaussian log-density ratio fitted on ``train_views`` (the views'
    canonical correlations shrunk as 5-fold cross-validation on those rows says;
    ``GaussianCritic.fit_cv``), or ``None`` where their covariance is singular."""
    dims = [np.shape(v)[1] for v in train_views]
    try:
        with np.errstate(all="ignore"):
            critic = GaussianCritic.fit_cv(np.concatenate(train_views, axis=1), dims, seed=seed)
    except ValueError:
        return None
    if not all(torch.isfinite(b).all() for b in critic.buffers()):
        return None
    return GaussianDV(dims, critic=critic, sampler="shifted")


def gaussian_bound(
    train_views,
    test_views,
    seed: int = 0,
    eval_negatives: int | None = None,
    config: EstimateConfig = _DEFAULTS,
) -> tuple[float, float]:
    """The DV bound of the Gaussian log-density ratio fitted on ``train_views``, on the rows of
    ``test_views``, in nats, and its standard error over folds of those rows.

    Its product term is taken as at least 0 (its value for a critic that is a density ratio). A
    lower bound on the total correlation whatever the data (the DV bound holds for every critic,
    this one never saw the rows it is scored on, and the floor only lowers it), equal to it for
    Gaussian views up to the fit's shortfall (about p / (2n) nats for p cross-view covariances
    fitted on n rows unshrunk, less where the dependency is carried by a few directions).
    ``estimate`` computes it in the Gaussian-copula transform, where per-feature maps of
    Gaussian views are undone. NaN where the training rows' covariance is singular or the rows
    scored are fewer than ``config.closed_form_min_rows``.
    """
    if len(test_views[0]) < config.closed_form_min_rows:
        return math.nan, math.nan
    measure = gaussian_measure(train_views, seed)
    if measure is None:
        return math.nan, math.nan
    measure.generator = torch.Generator().manual_seed(seed)
    test = [torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in test_views]
    return _evaluate(measure, test, eval_negatives, config.eval_product_rows, config.stderr_folds)


def mixture_critic(
    train_views, tuning_views, seed: int = 0, config: EstimateConfig = _DEFAULTS
) -> GaussianMixtureCritic | None:
    """The log-density ratio of the Gaussian mixture fitted on ``train_views`` whose covariance
    and number of components give the highest DV bound (the plain one, its product term
    unclamped) on ``tuning_views``, where that mixture is not the single Gaussian and its bound
    is above the single Gaussian's (or 0) by more than the noise (three of its standard errors and
    ``config.refit_gap_nats``): where the rows show dependency that one Gaussian does not.
    The mixtures tried: full covariances with 1, 2, 4, ... up to
    ``config.mixture_max_components`` components, and with ``config.mixture_block`` also
    covariances block-diagonal by view (the views independent given the component) with 2 up
    to that many. ``None`` where no mixture beats the Gaussian, where none is asked for, or
    where none can be fitted. A number of components needs more training rows than features
    times components."""
    rows = np.concatenate([np.asarray(v, dtype=np.float64) for v in train_views], axis=1)
    dims = [np.shape(v)[1] for v in train_views]
    tuning = [torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in tuning_views]
    best, best_value, best_stderr, single = None, -math.inf, math.nan, 0.0
    covariances = ("full", "block") if config.mixture_block and len(dims) > 1 else ("full",)
    for covariance in covariances:
        components = 1 if covariance == "full" else 2  # one block component: independence
        while (
            components <= config.mixture_max_components and len(rows) > components * rows.shape[1]
        ):
            try:
                critic = GaussianMixtureCritic.fit(
                    rows, dims, components, seed=seed, covariance=covariance
                )
            except (ValueError, torch.linalg.LinAlgError):  # a singular component
                break
            measure = TotalCorrelation(dims, critic=critic, sampler="shifted")
            measure.generator = torch.Generator().manual_seed(seed)
            value, stderr = _evaluate(
                measure, tuning, None, config.validation_product_rows, config.stderr_folds
            )
            if components == 1 and math.isfinite(value):
                single = max(value, 0.0)
            elif math.isfinite(value) and value > best_value:
                best, best_value, best_stderr = critic, value, stderr
            components *= 2
    if best is None or best_value - single <= _noise_floor(best_stderr, config):
        return None
    return best


def max_canonical_correlation(views) -> float:
    """The largest canonical correlation between any two of the views (1 where two views are
    copies or linear functions of each other; NaN where a view's own covariance is singular)."""
    dims = [np.shape(v)[1] for v in views]
    with np.errstate(all="ignore"):
        cov = np.atleast_2d(np.cov(np.concatenate(views, axis=1), rowvar=False))
        try:
            pairs = _canonical(cov, dims)
        except (ValueError, np.linalg.LinAlgError):
            return math.nan
    values = [float(s.max()) for (_, _, _, s, _) in pairs.values() if s.size]
    return max(values) if values and all(map(math.isfinite, values)) else math.nan
