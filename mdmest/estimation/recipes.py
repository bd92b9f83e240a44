"""What a measure gets from ``mdmest.estimate``: which critic, sampler, negatives and transform,
and the two rules that read a trained critic's run (it overfits; it is still learning)."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np

from mdmest._validation import check_choice
from mdmest.critics import MLPCritic, OffsetCritic
from mdmest.decomposition import DECOMPOSITIONS, DecomposedTotalCorrelation
from mdmest.estimation.config import EstimateConfig
from mdmest.measures import (
    KL_MEASURES,
    DependencyMeasure,
    FTotalCorrelation,
    TotalCorrelation,
    WassersteinDependency,
    make_measure,
)
from mdmest.transforms import (
    TRANSFORMS,
    CommonScale,
    GaussianCopula,
    RadialGaussian,
    fit_common_scale,
    fit_per_view,
)

__all__ = [
    "overfits",
    "still_rising",
    "KL_RECIPE_MEASURES",
    "DECOMPOSITION_CHOICES",
    "PLAIN_CRITIC",
    "DEEP_CRITIC",
    "RECIPE_LR",
    "DEFAULT_LR",
]

#: Measures that ``estimate`` builds, unless told otherwise, with the accuracy ladder's best recipe:
#: the "shifted" sampler and a GELU critic (see docs/benchmarks.md, "Accuracy ladder").
KL_RECIPE_MEASURES = KL_MEASURES
DECOMPOSITION_CHOICES = (None, *DECOMPOSITIONS)
_DEFAULTS = EstimateConfig()
#: The critic's learning rate where ``estimate`` builds a KL-type measure with the recipe ("dv",
#: or "f" with KL, by name): at 2,000 steps it fits strong dependency that 1e-3 underfits
#: (chosen on tuning random tasks, judged on others: docs/results/critic_capacity.md).
RECIPE_LR = 3e-3
#: The learning rate everywhere else (the Wasserstein critic, measures passed as instances).
DEFAULT_LR = 1e-3


def _recipe(
    name: str,
    dims: list[int],
    decomposition,
    negatives,
    options: dict,
    deep: bool = False,
    base=None,
):
    """The measure built by name with the ladder's recipe, and whether its negatives adapt.
    Without a decomposition the critic also reads each view's size (mean square); with ``deep``
    (the "deeper" candidate) it is the residual critic (:data:`DEEP_CRITIC`), not the plain
    one; with a ``base`` critic (:attr:`Prepared.mixture_base`), the critic is that base plus
    the network (:class:`~mdmest.critics.OffsetCritic`)."""
    options = dict(options)
    if name in KL_RECIPE_MEASURES:
        options.setdefault("sampler", "shifted")
        if "critic" not in options:
            # A decomposed measure calls the factory once per term.
            if decomposition:
                options["critic"] = _recipe_critic
            else:
                critic = _recipe_critic(sum(dims), view_dims=dims, deep=deep)
                options["critic"] = critic if base is None else OffsetCritic(base, critic)
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


#: The plain critic of the recipe: a GELU MLP of two hidden layers of 256.
PLAIN_CRITIC = MappingProxyType(dict(hidden=(256, 256), activation="gelu"))
#: The deeper critic the "deeper" candidate trains where the plain one fits without overfitting:
#: four pre-norm residual blocks of 128 with LayerNorm (about the plain critic's cost per step; it
#: fits multi-modal and sign-symmetric dependency that the plain one underfits in 2000 steps, and
#: overfits wide views faster: docs/results/critic_capacity.md).
DEEP_CRITIC = MappingProxyType(
    dict(hidden=(128, 128, 128, 128), activation="gelu", residual=True, layer_norm=True)
)


def _recipe_critic(
    in_features: int, view_dims: list[int] | None = None, deep: bool = False
) -> MLPCritic:
    return MLPCritic(in_features, view_dims=view_dims, **(DEEP_CRITIC if deep else PLAIN_CRITIC))


def _is_kl(measure: DependencyMeasure | DecomposedTotalCorrelation) -> bool:
    if isinstance(measure, DecomposedTotalCorrelation):
        return True
    if isinstance(measure, FTotalCorrelation):
        return measure.divergence == "kl"
    return isinstance(measure, TotalCorrelation)


def _kl_by_name(measure, measure_kwargs: dict) -> bool:
    """A measure by name whose bound is KL-type ("dv", or "f" with KL): the one ``estimate``
    builds with the recipe and the candidates beyond the critic apply to."""
    return (
        isinstance(measure, str)
        and measure in KL_RECIPE_MEASURES
        and measure_kwargs.get("divergence", "kl") == "kl"
    )


def _resolve_lr(lr, measure, measure_kwargs: dict):
    """``lr``, or where it is ``None`` the default of this measure: :data:`RECIPE_LR` for a
    KL-type measure by name, :data:`DEFAULT_LR` otherwise."""
    if lr is not None:
        return lr
    return RECIPE_LR if _kl_by_name(measure, measure_kwargs) else DEFAULT_LR


def _resolve_transform(transform, measure) -> str | None:
    name = measure if isinstance(measure, str) else None
    kl_type = name in KL_MEASURES or isinstance(
        measure, (TotalCorrelation, FTotalCorrelation, DecomposedTotalCorrelation)
    )
    wasserstein = name == "wasserstein" or isinstance(measure, WassersteinDependency)
    if transform == "auto":
        return "per_view" if kl_type else "scale" if wasserstein else None
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
    if transform == "radial":
        return [RadialGaussian().fit(rows) for rows in train_rows]
    if transform == "per_view":
        return [fit_per_view(rows) for rows in train_rows]
    whiten = transform == "whitened_copula"
    return [GaussianCopula(whiten=whiten).fit(rows) for rows in train_rows]


def _value_scale(measure, fitted) -> float:
    """What the measure's values on the mapped rows are multiplied by to be in the views' units:
    the common scale for a Wasserstein measure (1-homogeneous), 1 for the KL type (invariant)."""
    standardized = getattr(measure, "normalize", None) is True  # values in standardised units
    wasserstein = isinstance(measure, WassersteinDependency) and not standardized
    if fitted and wasserstein and isinstance(fitted[0], CommonScale):
        return fitted[0].scale
    return 1.0


def _noise_floor(stderr: float, config: EstimateConfig = _DEFAULTS) -> float:
    """The least difference of values that is not noise: three standard errors (none when the
    standard error is not finite) and ``config.refit_gap_nats``."""
    return max(3 * stderr if math.isfinite(stderr) else 0.0, config.refit_gap_nats)


def overfits(
    train_bound: float, value: float, stderr: float, config: EstimateConfig = _DEFAULTS
) -> bool:
    """Whether a validation ``value`` is so far below the final ``train_bound`` that the critic
    overfits the training rows: by more than ``config.refit_gap_fraction`` of the bound, three
    standard errors and ``config.refit_gap_nats``."""
    gap = max(config.refit_gap_fraction * abs(train_bound), _noise_floor(stderr, config))
    return train_bound - value > gap


def still_rising(
    history: np.ndarray, value: float, stderr: float, config: EstimateConfig = _DEFAULTS
) -> bool:
    """Whether a run stopped while its critic was still learning: the training bound over its last
    quarter of steps exceeds that over the quarter before by more than ``config.rise_fraction`` of
    it (and ``config.rise_nats``), and the validation ``value`` shows no overfitting."""
    quarter = len(history) // 4
    if quarter < 25:
        return False
    late = float(np.mean(history[-quarter:]))
    before = float(np.mean(history[-2 * quarter : -quarter]))
    rising = late - before > max(config.rise_fraction * abs(late), config.rise_nats)
    return rising and not overfits(late, value, stderr, config)
