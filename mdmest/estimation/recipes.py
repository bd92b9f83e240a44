"""What a measure gets from :func:`mdmest.estimate`: which critic, sampler, negatives and transform,
and the alternative that ``thorough=True`` tries."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special, stats

from mdmest import functional as Fn
from mdmest._validation import check_choice
from mdmest.critics import GaussianCritic, MLPCritic
from mdmest.decomposition import DECOMPOSITIONS, DecomposedTotalCorrelation
from mdmest.estimation.evaluation import _evaluate
from mdmest.measures import (
    KL_MEASURES,
    DependencyMeasure,
    FTotalCorrelation,
    TotalCorrelation,
    WassersteinDependency,
    make_measure,
)
from mdmest.transforms import TRANSFORMS, CommonScale, GaussianCopula, fit_common_scale

__all__ = [
    "gaussian_bound",
    "size_bound",
    "size_dependence",
    "thorough_alternative",
    "overfits",
    "refit_alternative",
    "still_rising",
    "REFIT_GAP_FRACTION",
    "REFIT_WEIGHT_DECAY",
    "REFIT_STRONG_WEIGHT_DECAY",
    "SIZES_NATS",
    "SIZE_BOUND_MIN_ROWS",
    "KL_RECIPE_MEASURES",
    "DECOMPOSITION_CHOICES",
    "THOROUGH_SPLIT_NATS",
    "THOROUGH_WEIGHT_DECAY",
]

#: Measures that estimate() builds, unless told otherwise, with the accuracy ladder's best recipe:
#: the "shifted" sampler and a GELU critic (see docs/benchmarks.md, section 3 "Accuracy ladder").
KL_RECIPE_MEASURES = KL_MEASURES
DECOMPOSITION_CHOICES = (None, *DECOMPOSITIONS)
#: ``thorough=True``: a one-critic value of at least this many nats calls for the tree decomposition
#: with weight decay as the alternative (with K >= 3 views), a lower one for one critic with weight
#: decay: weight decay helps weak dependency, and the tree's terms are weaker dependencies than the
#: whole (the threshold comes from the ladder: see docs/benchmarks.md, section 3, "How the two
#: alternatives were found").
THOROUGH_SPLIT_NATS = 1.5
#: ``thorough=True``: the weight decay of the alternative (either one).
THOROUGH_WEIGHT_DECAY = 0.3
#: ``refit=True``: a run overfits when its held-out value is below its final training bound by more
#: than this fraction of the bound (and by more than 3 standard errors and ``REFIT_GAP_NATS``);
#: it is then trained again with :func:`refit_alternative` (see docs/core.md, "When the first run
#: falls short"). Chosen at 10,000 rows on Gaussian views of 20 features at 0.5 to 4
#: nats (overfit by 8-72% of the bound; weight decay 0.3 better in each) against strong dependency
#: among narrow views and the suite's slow tasks (within 1.5%: no refit).
REFIT_GAP_FRACTION = 0.05
REFIT_GAP_NATS = 0.02
REFIT_WEIGHT_DECAY = THOROUGH_WEIGHT_DECAY
#: ``refit=True``: the weight decay of the third run, where the one-critic refit with
#: ``REFIT_WEIGHT_DECAY`` overfits too (measured on the task suite's wide views,
#: docs/benchmarks.md, section 6, "Wide views: outside the suite").
REFIT_STRONG_WEIGHT_DECAY = 1.0
#: ``refit=True``: the views' sizes must show more than this (and than the first run) for the
#: refit to be the view-size critic: a first run near 0 on weak Gaussian dependency among wide
#: views would otherwise trade weight decay (Gaussian, 10 + 10 features, 0.1 nats: 0.082) for a
#: critic whose extra inputs carry nothing (0.005; the sizes show 0.001 nats).
SIZES_NATS = 0.02
#: :func:`size_bound`: bootstrap resamples of the rows for its standard error, and the fewest
#: distinct values, as a fraction of the rows, that each view's size needs (with more ties the
#: sizes are not continuous and the Gaussian-copula value is no bound).
SIZE_BOUND_RESAMPLES = 100
SIZE_BOUND_DISTINCT = 0.9
#: :func:`size_bound` and :func:`gaussian_bound`: the fewest held-out rows they are computed on.
#: With fewer, a bound that needs no training reads above 0 on independent views too often to be
#: kept over a critic (Gaussian bound, 1 + 1 and 2 + 2 independent Student-t features, 50 rows:
#: up to 0.10 and 0.24 nats over 30 draws; 500 rows, 100 held out: up to 0.006 and 0.013).
SIZE_BOUND_MIN_ROWS = 100
#: ``refit=True``: a run whose training bound still rose by more than this fraction (and
#: ``RISE_NATS``) from the third to the last quarter of its steps, and that does not overfit, is
#: trained as long again from where it stopped (a fresh optimiser and learning-rate schedule,
#: ``EXTEND_LR_FACTOR`` times the learning rate).
RISE_FRACTION = 0.03
RISE_NATS = 0.01
EXTEND_LR_FACTOR = 2.0


def _recipe(
    name: str, dims: list[int], decomposition, negatives, options: dict, view_sizes: bool = False
):
    """The measure built by name with the ladder's recipe, and whether its negatives adapt; with
    ``view_sizes`` (the last refit, no decomposition), a critic that also reads each view's size."""
    options = dict(options)
    if name in KL_RECIPE_MEASURES:
        options.setdefault("sampler", "shifted")
        if "critic" not in options:
            # A decomposed measure calls the factory once per term.
            options["critic"] = (
                _recipe_critic
                if decomposition
                else _recipe_critic(sum(dims), view_dims=dims if view_sizes else None)
            )
    if negatives not in (None, "auto"):
        options["negatives"] = negatives
    if decomposition is not None:
        built = DecomposedTotalCorrelation(
            dims, decomposition=decomposition, measure=name, **options
        )
    else:
        built = make_measure(name, dims, **options)
    return built, _auto_negatives(built, negatives, by_name=True)


def _auto_negatives(measure, negatives, by_name: bool) -> bool:
    if negatives is None and by_name and _is_kl(measure):
        negatives = "auto"  # the recipe's default for "dv", and "f" with KL
    if negatives == "auto" and not _is_kl(measure):
        got = type(measure).__name__
        if isinstance(measure, FTotalCorrelation):
            got += f" with divergence {measure.divergence!r}"
        raise ValueError(
            "negatives='auto' needs a KL-type measure ('dv', or 'f' with the KL divergence), "
            f"whose product side averages e^T; got {got}"
        )
    return negatives == "auto"


def _recipe_critic(in_features: int, view_dims: list[int] | None = None) -> MLPCritic:
    return MLPCritic(in_features, activation="gelu", view_dims=view_dims)


def _is_kl(measure: DependencyMeasure | DecomposedTotalCorrelation) -> bool:
    if isinstance(measure, DecomposedTotalCorrelation):
        return True
    if isinstance(measure, FTotalCorrelation):
        return measure.divergence == "kl"
    return isinstance(measure, TotalCorrelation)


def _resolve_transform(transform, measure) -> str | None:
    name = measure if isinstance(measure, str) else None
    kl_type = name in KL_MEASURES or isinstance(
        measure, (TotalCorrelation, FTotalCorrelation, DecomposedTotalCorrelation)
    )
    wasserstein = name == "wasserstein" or isinstance(measure, WassersteinDependency)
    if transform == "auto":
        return "whitened_copula" if kl_type else "scale" if wasserstein else None
    check_choice("transform", transform, ("auto", *TRANSFORMS, None))
    if transform not in (None, "scale") and not kl_type:
        raise ValueError(
            f"transform={transform!r} is valid for 'dv' and 'f' only: the Wasserstein value "
            "depends on the scale of the views; pass transform='scale' (the default) or None"
        )
    return transform


def _fit_transforms(transform: str | None, train_rows: list[np.ndarray]):
    """One map per view fitted on its training rows, or ``None`` without a transform."""
    if transform is None:
        return None
    if transform == "scale":
        return fit_common_scale(train_rows)
    whiten = transform == "whitened_copula"
    return [GaussianCopula(whiten=whiten).fit(rows) for rows in train_rows]


def _value_scale(measure, fitted) -> float:
    """What the measure's values on the mapped rows are multiplied by to be in the views' units:
    the common scale for a Wasserstein measure (1-homogeneous), 1 for the KL type (invariant)."""
    if fitted and isinstance(measure, WassersteinDependency) and isinstance(fitted[0], CommonScale):
        return fitted[0].scale
    return 1.0


def overfits(train_bound: float, value: float, stderr: float) -> bool:
    """Whether a held-out ``value`` is so far below the final ``train_bound`` that the critic
    overfits the training rows (the rule of ``refit=True``)."""
    noise = 3 * stderr if math.isfinite(stderr) else 0.0
    return train_bound - value > max(REFIT_GAP_FRACTION * abs(train_bound), noise, REFIT_GAP_NATS)


def still_rising(history: np.ndarray, value: float, stderr: float) -> bool:
    """Whether a run stopped while its critic was still learning: the training bound over its last
    quarter of steps exceeds that over the quarter before by more than ``RISE_FRACTION`` of it
    (and ``RISE_NATS``), and the held-out value shows no overfitting (:func:`overfits`)."""
    quarter = len(history) // 4
    if quarter < 25:
        return False
    late = float(np.mean(history[-quarter:]))
    before = float(np.mean(history[-2 * quarter : -quarter]))
    rising = late - before > max(RISE_FRACTION * abs(late), RISE_NATS)
    return rising and not overfits(late, value, stderr)


def refit_alternative(
    value: float, n_views: int, decomposition: str | None, sizes: float = 0.0
) -> tuple[str, dict]:
    """The second run of ``refit=True`` after a first run that overfits and read ``value`` nats.

    ``thorough``'s alternative (weight decay below ``THOROUGH_SPLIT_NATS``; with 3 or more views
    at or above it, the tree with weight decay, whose terms are each a weaker dependency), or
    weight decay alone where there is none or the caller chose the decomposition. Where weight
    decay alone would run, no decomposition is chosen, and the views' sizes show more than both
    ``value`` and ``SIZES_NATS`` (``sizes``: :func:`size_dependence` less its mean under
    independence; pass 0 where a critic of the caller's rules the view-size critic out), the
    default options with a critic that also reads each view's size ("view_sizes") instead.
    """
    alternative = thorough_alternative(value, n_views)
    if alternative is None or decomposition is not None:
        alternative = "weight_decay", {"weight_decay": REFIT_WEIGHT_DECAY}
    if (
        alternative[0] == "weight_decay"
        and decomposition is None
        and sizes > max(value, SIZES_NATS)
    ):
        return "view_sizes", {"view_sizes": True}
    return alternative


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
    sign, logdet = np.linalg.slogdet(np.corrcoef(scores, rowvar=False))
    return float(-0.5 * logdet) if sign > 0 else math.inf


def _null_mean(k: int, rows: int) -> float:
    """The mean of :func:`size_dependence` over ``rows`` rows of ``k`` independent views."""
    return k * (k - 1) / (4 * rows)


def size_dependence(views) -> float:
    """How much dependency the views' sizes alone show, in nats: the Gaussian-copula total
    correlation of the K mean squares (‖x_k‖² / d_k), −½ log det of the correlation of their
    normal scores. Where it exceeds what an overfit first critic read, the refit of ``refit=True``
    is a critic that also reads the sizes: heavy tails shared across views (multivariate Student-t
    pairs: 80–95% of the true value) and not Gaussian views (about 0)."""
    return _copula_tc(_size_scores(views))


def size_bound(views, seed: int = 0) -> tuple[float, float]:
    """A lower bound on the total correlation of the views from their sizes alone, in nats, and
    its standard error (a bootstrap over the rows, ``SIZE_BOUND_RESAMPLES`` resamples).

    The value is :func:`size_dependence` less its mean under independence, K(K−1)/(4n) for K sizes
    and n rows. It bounds the total correlation from below: the TC of the views is at least that of
    any one function of each view (data processing), here the normal score of its size, and among
    variables with normal marginals and a given correlation the Gaussian has the least TC. It
    is exact where the views share nothing but a random scale (spherical heavy tails, as in a
    multivariate Student-t with identity dispersion) and about 0 for Gaussian views.
    :func:`~mdmest.estimate` keeps it where it beats every critic ("size_bound"). NaN where
    fewer than two views have continuous sizes (a view of one size, or sizes with more than
    ``1 - SIZE_BOUND_DISTINCT`` of the rows tied), the sizes are identical, or the rows are fewer
    than ``SIZE_BOUND_MIN_ROWS``.
    """
    scores = _size_scores(views)
    rows, k = scores.shape
    distinct = [len(np.unique(column)) for column in scores.T]
    if k < 2 or rows < SIZE_BOUND_MIN_ROWS or min(distinct) < SIZE_BOUND_DISTINCT * rows:
        return math.nan, math.nan
    value = _copula_tc(scores)
    if not math.isfinite(value):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    resampled = [
        _copula_tc(_normal_scores(scores[pick]))
        for pick in rng.integers(0, rows, size=(SIZE_BOUND_RESAMPLES, rows))
    ]
    return value - _null_mean(k, rows), float(np.std(resampled, ddof=1))


class _GaussianDV(TotalCorrelation):
    """The DV bound with its product term log E_q[e^T] taken as at least 0, its value for a
    critic that is a density ratio: for the Gaussian log-ratio under strong dependency, e^T on
    product rows is so heavy-tailed that their log-mean-exp falls short of it (4 views of 5
    features at 8 nats: +3.7% over the truth on average, against −0.03% with the floor)."""

    def bound(self, t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
        return t_joint.mean() - Fn.log_mean_exp(t_product).clamp(min=0.0)


def gaussian_bound(
    train_views, test_views, seed: int = 0, eval_negatives: int | None = None
) -> tuple[float, float]:
    """The DV bound of the Gaussian log-density ratio fitted on ``train_views``
    (:meth:`GaussianCritic.fit_cv <mdmest.critics.GaussianCritic.fit_cv>`: the views' canonical
    correlations shrunk as cross-validation on those rows says), on the rows of ``test_views``,
    in nats, and its
    standard error over folds of those rows (as for a trained critic; the product rows are
    drawn by the "shifted" sampler from a generator seeded with ``seed``).

    Its product term, log E_q[e^T], is taken as at least 0 (its value for a critic that is a
    density ratio): with strong dependency the log-mean-exp over sampled product rows falls
    short of it and the bound would read above the truth. A lower bound on the total correlation
    whatever the data (the DV bound holds for every critic, this one never saw the rows it is
    scored on, and the floor only lowers it), equal to it for Gaussian views up to the fit's
    shortfall: about p / (2n) nats for p cross-view covariances fitted on n rows unshrunk, less
    where the dependency is carried by a few directions or is weak among many features.
    :func:`~mdmest.estimate` computes it in the Gaussian-copula transform, where per-feature maps
    of Gaussian views are undone, and keeps it where it beats every critic
    ("gaussian_copula"). NaN where the training rows' covariance is singular or the held-out rows
    are fewer than ``SIZE_BOUND_MIN_ROWS``.
    """
    dims = [np.shape(v)[1] for v in train_views]
    if len(test_views[0]) < SIZE_BOUND_MIN_ROWS:
        return math.nan, math.nan
    try:
        critic = GaussianCritic.fit_cv(np.concatenate(train_views, axis=1), dims, seed=seed)
    except ValueError:
        return math.nan, math.nan
    measure = _GaussianDV(dims, critic=critic, sampler="shifted")
    measure.generator = torch.Generator().manual_seed(seed)
    test = [torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in test_views]
    return _evaluate(measure, test, eval_negatives)


def thorough_alternative(value: float, n_views: int) -> tuple[str, dict] | None:
    """The run ``thorough=True`` adds after a default run that read ``value`` nats on ``n_views``.

    Returns its name in ``EstimateResult.candidates`` and the options of
    :func:`~mdmest.estimate` it changes, or ``None`` where there is none (2 views at
    ``THOROUGH_SPLIT_NATS`` or more).
    """
    if value < THOROUGH_SPLIT_NATS:
        return "weight_decay", {"weight_decay": THOROUGH_WEIGHT_DECAY}
    if n_views >= 3:
        return "tree_weight_decay", {"decomposition": "tree", "weight_decay": THOROUGH_WEIGHT_DECAY}
    return None
