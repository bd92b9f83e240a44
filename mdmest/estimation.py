"""Train a measure's critic on arrays and report the bound on held-out rows.

:func:`estimate` is a short composition of named parts: the input checks (every bad input is named
before any training), the split into training, validation and held-out rows, the per-feature
transform fitted on the training rows (:mod:`mdmest.transforms`), the recipe (which critic, sampler
and negatives a measure gets), the training loop and the held-out evaluation.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import numbers
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from mdmest import functional as Fn
from mdmest._validation import check_choice, view_label
from mdmest.critics import MLPCritic
from mdmest.measures import (
    DECOMPOSITIONS,
    KL_MEASURES,
    MEASURES,
    DecomposedTotalCorrelation,
    DependencyMeasure,
    FTotalCorrelation,
    TotalCorrelation,
    make_measure,
)
from mdmest.transforms import TRANSFORMS, GaussianCopula

__all__ = ["EstimateResult", "EstimateWarning", "estimate", "thorough_alternative"]

LR_SCHEDULES = (None, "cosine")
#: Measures that estimate() builds, unless told otherwise, with the accuracy ladder's best recipe
#: (docs/benchmarks.md §3): the "shifted" sampler and a GELU critic.
KL_RECIPE_MEASURES = KL_MEASURES
#: With ``eval_negatives=None`` the held-out value averages over at least this many product rows.
EVAL_PRODUCT_ROWS = 2**18
#: ``negatives="auto"``: every ``AUTO_CHECK_STEPS`` steps, if the product rows' mean effective sample
#: fraction (:func:`mdmest.functional.effective_sample_fraction`) fell below ``AUTO_ESS_FRACTION``,
#: the negatives double, up to ``AUTO_MAX_NEGATIVES``.
AUTO_CHECK_STEPS = 100
AUTO_ESS_FRACTION = 0.1
AUTO_MAX_NEGATIVES = 16
#: ``thorough=True``: a one-critic value of at least this many nats calls for the tree decomposition
#: with weight decay as the alternative (with K >= 3 views), a lower one for one critic with weight
#: decay (docs/benchmarks.md §3: on the ladder the tree never won below 2 nats among wide views and
#: always won from 4 nats; weight decay helps weak dependency, and the tree's terms are weaker
#: dependencies than the whole).
THOROUGH_SPLIT_NATS = 1.5
#: ``thorough=True``: the weight decay of the alternative (either one).
THOROUGH_WEIGHT_DECAY = 0.3
DECOMPOSITION_CHOICES = (None, *DECOMPOSITIONS)
#: With fewer training rows than this, a ``VALIDATION_FRACTION`` of them is set aside: the state
#: kept is the one whose validation bound less ``VALIDATION_MARGIN`` standard errors is highest
#: (the untrained critic and every ``steps // VALIDATION_CHECKS`` steps, and steps 1, 2, 4, ...),
#: then its scores are shrunk toward a constant by the factor among ``SHRINKS`` the same rule
#: picks; with fewer than ``MIN_VALIDATION_ROWS`` validation rows, all the way (the value is 0).
#: Chosen on 3 Gaussian views at TC 1 nat, 50 to 2000 rows (docs/core.md, "Few rows").
VALIDATE_BELOW_ROWS = 4000
VALIDATION_FRACTION = 0.25
VALIDATION_CHECKS = 20
VALIDATION_MARGIN = 1.0
SHRINKS = (1.0, 0.5, 0.25, 0.0)
MIN_VALIDATION_ROWS = 20
#: The standard error of the value comes from up to this many disjoint folds of the held-out rows.
STDERR_FOLDS = 10
#: Fewer held-out rows than this make the value too noisy to trust without its standard error.
FEW_TEST_ROWS = 250


class EstimateWarning(UserWarning):
    """An estimate that should not be trusted as it is: negative, overfit, or from too few rows."""


@dataclass
class EstimateResult:
    """What :func:`estimate` returns.

    Attributes
    ----------
    value : float
        The bound on the held-out rows with the kept critic, its product side averaged over
        ``eval_negatives`` draws (nats for "dv" and "f" with KL, the views' units for
        "wasserstein").
    stderr : float
        Standard error of ``value`` over held-out rows, critic fixed: the standard deviation of
        the value on ``m`` disjoint folds of the held-out rows (m ≤ 10), divided by √m. It does
        not include the variation between training runs. NaN when the held-out rows are too few
        for two folds.
    history : numpy.ndarray
        The bound on each training minibatch, one entry per step.
    measure : DependencyMeasure
        The trained measure (critic included), ready for ``estimate``/``scores`` on new rows.
        When ``transform`` is not ``None`` it expects transformed rows: use
        ``result.transform_views(views)`` first.
    n_train, n_validation, n_test : int
        Rows the critic trained on, rows that chose the critic kept (0 with many rows: the final
        critic is kept), and held-out rows of ``value``.
    train_bound : float
        The mean training bound over the last 100 steps (or fewer).
    step_seconds : numpy.ndarray
        Wall-clock seconds of each training step (on an accelerator, the time to queue it).
    transform : str, optional
        The transform applied before the critic ("whitened_copula" or "copula"), or ``None``.
    candidates : dict of str to float, optional
        With ``thorough=True``: the held-out value of each setting trained ("default", and
        "weight_decay" or "tree_weight_decay"), of which ``value`` is the larger. Otherwise ``None``.
    """

    value: float
    stderr: float
    history: np.ndarray = field(repr=False)
    measure: DependencyMeasure | DecomposedTotalCorrelation = field(repr=False)
    n_train: int = 0
    n_validation: int = 0
    n_test: int = 0
    train_bound: float = math.nan
    step_seconds: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    transform: str | None = None
    candidates: dict[str, float] | None = None
    transforms: list[GaussianCopula] | None = field(default=None, repr=False)

    def __float__(self) -> float:
        return self.value

    def transform_views(self, views: Sequence) -> list[np.ndarray]:
        """Apply the transform fitted on the training rows to new rows of the same views."""
        arrays = [np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in views]
        if self.transforms is None:
            return arrays
        return [fitted.transform(a) for fitted, a in zip(self.transforms, arrays)]


def estimate(
    views: Sequence[np.ndarray | torch.Tensor],
    measure: str | DependencyMeasure | DecomposedTotalCorrelation = "dv",
    *,
    transform: str | None = "auto",
    decomposition: str | None = None,
    thorough: bool = False,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    lr_schedule: str | None = "cosine",
    weight_decay: float = 0.0,
    negatives: int | str | None = None,
    test_fraction: float = 0.2,
    eval_negatives: int | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    **measure_kwargs,
) -> EstimateResult:
    r"""Estimate the dependency among K views from paired rows.

    The rows are split once into a training and a held-out part; the critic is trained with Adam on
    minibatches of the training part (shuffled each epoch) and the bound is reported on the held-out
    part, with the final critic (never the best of several checkpoints on the held-out rows, which
    would bias it upward). With fewer than 4000 training rows, a quarter of them is set aside as
    validation rows and the critic kept is the one with the best bound on them, the untrained one
    included: with few rows the critic overfits long before the last step, and an untrained critic
    reads about 0.

    Every input is checked before any training: the views (at least two, 1-d or 2-d, numeric,
    finite, the same number of rows), the options (an unknown one lists the valid ones) and the
    number of rows (the error states the minimum).

    Parameters
    ----------
    views : sequence of array-like
        K arrays (numpy or torch) of shapes (n, d_k), row i of each from the same sample; a 1-d
        array is one feature. Integer and boolean arrays are read as floats.
    measure : str or DependencyMeasure
        "dv", "f" or "wasserstein" (built with ``measure_kwargs``), or a measure instance (the
        rows are then cast to its parameters' dtype and moved to their device). By name, "dv" and
        "f" get the accuracy ladder's best recipe unless ``sampler=`` or ``critic=`` says
        otherwise: the "shifted" sampler, an :class:`~mdmest.critics.MLPCritic` with GELU
        activations (smooth critics fit the log-density ratio with less overfitting than ReLU
        ones) and ``negatives="auto"`` (docs/benchmarks.md §3).
    transform : str, optional
        A map of each view fitted on the training rows and applied to all rows before the critic
        (:class:`~mdmest.transforms.GaussianCopula`). "copula": each feature's empirical
        distribution function, then the standard-normal quantile. "whitened_copula": the same,
        then the view is whitened (an invertible linear map fitted on the same rows). Total
        correlation and every f-divergence are unchanged by such maps (they are invertible on each
        view). The first makes heavy tails, outliers and odd scales harmless (pairs of Student-t
        vectors with 1 or 2 degrees of freedom read tens to hundreds of nats below zero
        untransformed); the second also makes dependency carried by directions of small variance
        as visible as any other (Gaussian views with random within-view spectra, 4 views of 20
        features at 2 nats: −8% instead of −26%). "auto" (default): "whitened_copula" for "dv"
        and "f" (any divergence), ``None`` for "wasserstein", whose value depends on the scale of
        the views (a transform there raises). ``None``: the rows as given (the values of earlier
        releases).
    decomposition : str, optional
        For "dv" and "f" by name. ``None`` (default): one critic over all the views. "tree" or
        "chain": the total correlation as a sum of K − 1 two-group mutual informations, one critic
        each (:class:`~mdmest.measures.DecomposedTotalCorrelation`), trained together on the same
        batches: far better with strong dependency among 3 or more views, far worse with weak
        dependency among wide views (docs/benchmarks.md §3).
    thorough : bool
        The library's most accurate setting, for "dv" and "f" (KL) by name, at twice the
        training: the default estimate first; then the alternative that its value points to
        (:func:`thorough_alternative`), trained with the same seed. The larger held-out value is
        kept (both are lower bounds); ``result.candidates`` has both and ``result.measure`` is
        the kept one (docs/benchmarks.md §3).
    steps, batch_size, lr : int, int, float
        Optimisation budget: Adam steps, rows per step and learning rate.
    lr_schedule : str, optional
        "cosine" (default) decays the learning rate to 0 over ``steps`` (half a cosine), which
        settles the final critic and lowers the variance of the value; ``None`` keeps ``lr``
        constant.
    weight_decay : float
        Decoupled weight decay of the critic's optimiser (AdamW; 0, the default, is plain Adam).
        It regularises the critic where it overfits the joint rows (weak dependency among wide
        views) and costs accuracy with strong dependency.
    negatives : int or "auto", optional
        Product rows per joint row in each training step. "auto" (the default for "dv" and "f"
        with KL by name) starts at one and doubles, up to 16, whenever the product rows'
        effective sample fraction over the last 100 steps is below 0.1: strong dependency makes
        :math:`\log \mathbb{E}_q[e^T]` an average over a few rows, and more rows fix that,
        while with weak dependency one negative regularises better. ``None``: the measure's own
        (one, unless built otherwise).
    test_fraction : float
        Fraction of rows held out for the reported value, in (0, 1).
    eval_negatives : int, optional
        Product rows drawn per held-out row for the reported value. Default: enough for at least
        2^18 product rows in all (64 for 4096 held-out rows).
    seed : int
        Seeds the split, the batches, the shuffles and the critic's initialisation: the result is
        deterministic for a given seed.
    progress : bool
        Show a tqdm progress bar.
    device : str or torch.device, optional
        Where to train (default: CPU, or a given measure's device).
    **measure_kwargs
        Options of the measure built by name (e.g. ``divergence="js"``, ``lipschitz=``,
        ``names=``, ``critic=``); an unknown one raises a ``TypeError`` listing the valid ones.

    Returns
    -------
    EstimateResult
        With the value, its standard error, the row counts and the final training bound.

    Warns
    -----
    EstimateWarning
        When the held-out value is below 0 by more than two standard errors, far below the
        training bound (the critic overfits), or computed on fewer than 250 held-out rows.

    Examples
    --------
    >>> from mdmest.tasks import gaussian_task_with_tc
    >>> task = gaussian_task_with_tc(1.0, [2, 2])
    >>> result = estimate(task.sample(2000), "dv", steps=50, progress=False)
    >>> isinstance(result.value, float), result.history.shape, result.n_test
    (True, (50,), 400)
    """
    if thorough:
        return _thorough(
            views,
            measure,
            measure_kwargs,
            transform=transform,
            decomposition=decomposition,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            lr_schedule=lr_schedule,
            weight_decay=weight_decay,
            negatives=negatives,
            test_fraction=test_fraction,
            eval_negatives=eval_negatives,
            seed=seed,
            progress=progress,
            device=device,
        )
    _check_settings(
        steps, batch_size, lr, lr_schedule, weight_decay, negatives, eval_negatives, test_fraction
    )
    if decomposition not in DECOMPOSITION_CHOICES:
        raise ValueError(
            f"unknown decomposition {decomposition!r}; valid values are {DECOMPOSITION_CHOICES}"
        )
    if isinstance(measure, str):
        _check_options(measure, decomposition, measure_kwargs)
        dtype, device = torch.float32, _as_device(device)
    else:
        _check_instance_options(measure, decomposition, measure_kwargs, negatives)
        dtype, device = _instance_placement(measure, device)
    names = measure_kwargs.get("names") or getattr(measure, "names", None)
    arrays = _as_arrays(views, names)
    if not isinstance(measure, str):
        widths = tuple(a.shape[1] for a in arrays)
        if widths != tuple(measure.dims):
            raise ValueError(
                f"got {len(widths)} views of widths {widths}; the measure was built for "
                f"dims={tuple(measure.dims)}"
            )
    transform = _resolve_transform(transform, measure)
    num_rows = arrays[0].shape[0]
    with _flush_denormal(), torch.random.fork_rng(devices=_cuda(device)):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device).manual_seed(seed)
        split = _split(num_rows, len(arrays), test_fraction, generator)
        fitted = _fit_transforms(transform, [a[split.train] for a in arrays])
        if fitted:
            arrays = [f.transform(a) for f, a in zip(fitted, arrays)]
        tensors = [torch.as_tensor(a).to(device=device, dtype=dtype) for a in arrays]
        if isinstance(measure, str):
            measure, auto_negatives = _recipe(
                measure, [t.shape[1] for t in tensors], decomposition, negatives, measure_kwargs
            )
        else:
            auto_negatives = _auto_negatives(measure, negatives, by_name=False)
        measure = measure.to(device)
        train, validation, test = (
            [t.index_select(0, torch.as_tensor(rows, device=device)) for t in tensors]
            for rows in (split.train, split.validation, split.test)
        )
        measure.generator = generator
        try:
            history, step_seconds = _train(
                measure, train, validation, steps, batch_size, lr, lr_schedule, weight_decay,
                auto_negatives, progress, generator,
            )  # fmt: skip
            value, stderr = _evaluate(measure, test, eval_negatives)
        finally:
            measure.generator = None
    result = EstimateResult(
        value=value,
        stderr=stderr,
        history=history,
        measure=measure,
        n_train=split.sizes[0],
        n_validation=split.sizes[1],
        n_test=split.sizes[2],
        train_bound=float(history[-100:].mean()),
        step_seconds=step_seconds,
        transform=transform,
        transforms=fitted,
    )
    _warn_if_untrustworthy(result)
    return result


# -- input checks ---------------------------------------------------------------------------------
def _check_settings(
    steps, batch_size, lr, lr_schedule, weight_decay, negatives, eval_negatives, test_fraction
) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; valid values are {LR_SCHEDULES}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    for name, value, least in (("steps", steps, 1), ("batch_size", batch_size, 2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    if isinstance(negatives, str) and negatives != "auto":
        raise ValueError(f"negatives must be an int >= 1, 'auto' or None, got {negatives!r}")
    if eval_negatives is not None and (
        not isinstance(eval_negatives, numbers.Integral) or eval_negatives < 1
    ):
        raise ValueError(f"eval_negatives must be an int >= 1, got {eval_negatives!r}")


def _as_device(device) -> torch.device:
    try:
        device = torch.device(device or "cpu")
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but this torch has no CUDA device")
    return device


def _keywords(function) -> set[str]:
    return {
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and name != "self")
    }


def _check_options(name: str, decomposition: str | None, options: dict) -> None:
    """Name an unknown measure or option before anything is built."""
    check_choice("measure", name, tuple(MEASURES))
    valid = _keywords(MEASURES[name].__init__) | _keywords(DependencyMeasure.__init__)
    if decomposition is not None:
        valid |= _keywords(DecomposedTotalCorrelation.__init__) - {"measure", "decomposition"}
    valid -= {"dims"}
    unknown = sorted(set(options) - valid)
    if unknown:
        own = sorted(_keywords(estimate) - {"views", "measure", "measure_kwargs"})
        raise TypeError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
            f"estimate(..., {name!r}); estimate's options are {', '.join(own)}; the measure's "
            f"are {', '.join(sorted(valid))}"
        )


def _check_instance_options(measure, decomposition, options: dict, negatives) -> None:
    if not isinstance(measure, (DependencyMeasure, DecomposedTotalCorrelation)):
        raise TypeError(
            "measure must be 'dv', 'f', 'wasserstein' or a DependencyMeasure, got "
            f"{type(measure).__name__}"
        )
    if decomposition is not None:
        raise TypeError(
            "decomposition applies only when measure is given by name; build a "
            "DecomposedTotalCorrelation instead"
        )
    if options:
        raise TypeError(f"options {sorted(options)} apply only when measure is given by name")
    if negatives not in (None, "auto"):
        raise TypeError(
            f"negatives={negatives!r} applies only when measure is given by name; set it on "
            "the measure, or pass negatives='auto'"
        )


def _instance_placement(measure, device) -> tuple[torch.dtype, torch.device]:
    """The dtype and device rows must have for a given measure (its parameters')."""
    parameter = next((p for p in measure.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    if device is not None:
        return dtype, _as_device(device)
    return dtype, parameter.device if parameter is not None else torch.device("cpu")


def _as_arrays(views: Sequence, names: Sequence[str] | None) -> list[np.ndarray]:
    """The views as float64 arrays of shape (n, d_k), every problem named before any training."""
    if isinstance(views, (np.ndarray, torch.Tensor)) or not isinstance(views, Sequence):
        raise TypeError(
            "views must be a sequence of K arrays (one per view), not a single "
            f"{type(views).__name__}"
        )
    if len(views) < 2:
        raise ValueError(f"need at least 2 views, got {len(views)}")
    arrays = []
    for i, view in enumerate(views):
        if isinstance(view, torch.Tensor):
            view = view.detach().cpu()
            if view.dtype in (torch.bfloat16, torch.float16):
                view = view.float()
            view = view.numpy()
        array = np.asarray(view)
        if array.dtype.kind not in "fiub":
            raise TypeError(
                f"{view_label(i, names)} must hold real numbers, got an array of dtype {array.dtype}"
            )
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(
                f"{view_label(i, names)} must be 1-d (n,) or 2-d (n, features), got shape "
                f"{array.shape}; flatten it first, e.g. view.reshape(len(view), -1)"
            )
        if array.shape[1] == 0:
            raise ValueError(f"{view_label(i, names)} has no features (shape {array.shape})")
        arrays.append(array.astype(np.float64, copy=False))
    rows = [a.shape[0] for a in arrays]
    if len(set(rows)) > 1:
        counts = ", ".join(f"{view_label(i, names)}: {r}" for i, r in enumerate(rows))
        raise ValueError(f"the views must have the same number of rows (paired), got {counts}")
    for i, array in enumerate(arrays):
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).any(axis=1).sum())
            raise ValueError(f"{view_label(i, names)} contains NaN or Inf values in {bad} rows")
    return arrays


def _resolve_transform(transform, measure) -> str | None:
    name = measure if isinstance(measure, str) else None
    kl_type = name in KL_MEASURES or isinstance(
        measure, (TotalCorrelation, FTotalCorrelation, DecomposedTotalCorrelation)
    )
    if transform == "auto":
        return "whitened_copula" if kl_type else None
    check_choice("transform", transform, ("auto", *TRANSFORMS, None))
    if transform is not None and not kl_type:
        raise ValueError(
            f"transform={transform!r} is valid for 'dv' and 'f' only: the Wasserstein value "
            "depends on the scale of the views; pass transform=None"
        )
    return transform


def _fit_transforms(transform: str | None, train_rows: list[np.ndarray]):
    """One map per view fitted on its training rows, or ``None`` without a transform."""
    if transform is None:
        return None
    whiten = transform == "whitened_copula"
    return [GaussianCopula(whiten=whiten).fit(rows) for rows in train_rows]


# -- the split --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Split:
    """Row positions of the training, validation and held-out parts."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.validation), len(self.test)


def _part_sizes(n: int, test_fraction: float) -> tuple[int, int, int]:
    n_test = int(round(n * test_fraction))
    rest = n - n_test
    n_val = int(round(rest * VALIDATION_FRACTION)) if rest < VALIDATE_BELOW_ROWS else 0
    return rest - n_val, n_val, n_test


def _sizes_ok(sizes: tuple[int, int, int], num_views: int) -> bool:
    # Each part is one batch somewhere (the held-out value, a validation check), and the shifted
    # sampler needs at least as many rows as views.
    need = max(2, num_views)
    n_train, n_val, n_test = sizes
    return n_train >= need and n_test >= need and (n_val == 0 or n_val >= need)


def minimum_rows(num_views: int, test_fraction: float = 0.2) -> int:
    """The fewest rows :func:`estimate` accepts for ``num_views`` views and this split."""
    # Every part grows with n: double past the minimum, then bisect.
    high = 2
    while not _sizes_ok(_part_sizes(high, test_fraction), num_views):
        high *= 2
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        if _sizes_ok(_part_sizes(middle, test_fraction), num_views):
            high = middle
        else:
            low = middle
    return high


def _split(n: int, num_views: int, test_fraction: float, generator: torch.Generator) -> _Split:
    """Held-out rows first in one permutation drawn from ``generator``, then validation, then
    training (with no validation part, the split of earlier releases for the same seed)."""
    n_train, n_val, n_test = _part_sizes(n, test_fraction)
    if not _sizes_ok((n_train, n_val, n_test), num_views):
        raise ValueError(
            f"{n} rows are too few: with {num_views} views and test_fraction={test_fraction}, "
            f"estimate needs at least {minimum_rows(num_views, test_fraction)} rows"
        )
    order = torch.randperm(n, generator=generator, device=generator.device).cpu().numpy()
    return _Split(
        train=order[n_test + n_val :],
        validation=order[n_test : n_test + n_val],
        test=order[:n_test],
    )


# -- the recipe -----------------------------------------------------------------------------------
def _recipe(name: str, dims: list[int], decomposition, negatives, options: dict):
    """The measure built by name with the ladder's recipe, and whether its negatives adapt."""
    options = dict(options)
    if name in KL_RECIPE_MEASURES:
        options.setdefault("sampler", "shifted")
        if "critic" not in options:
            # A decomposed measure calls the factory once per term.
            options["critic"] = _recipe_critic if decomposition else _recipe_critic(sum(dims))
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


def _recipe_critic(in_features: int) -> MLPCritic:
    return MLPCritic(in_features, activation="gelu")


def _is_kl(measure: DependencyMeasure | DecomposedTotalCorrelation) -> bool:
    if isinstance(measure, DecomposedTotalCorrelation):
        return True
    if isinstance(measure, FTotalCorrelation):
        return measure.divergence == "kl"
    return isinstance(measure, TotalCorrelation)


# -- training ---------------------------------------------------------------------------------------
def _cuda(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []


def _flush_denormal_on() -> bool:
    return float(torch.tensor([1e-40], dtype=torch.float32).mul(1.0)[0]) == 0.0


@contextlib.contextmanager
def _flush_denormal() -> Iterator[None]:
    """Flush subnormal floats to zero on the CPU for the block, then restore the caller's state.

    Critic weights and Adam's moments can decay into the subnormal range, where every CPU
    multiply costs ~100x (measured: steps of 400 ms instead of 4 ms late in a run).
    """
    was_on = _flush_denormal_on()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported and not was_on:
            torch.set_flush_denormal(False)


def _train(
    measure,
    train: list[torch.Tensor],
    validation: list[torch.Tensor],
    steps: int,
    batch_size: int,
    lr: float,
    lr_schedule: str | None,
    weight_decay: float,
    auto_negatives: bool,
    progress: bool,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Train the critic; returns the bound and the wall seconds of each step.

    With validation rows, the critic kept is the one with the best validation bound among the
    untrained one and those checked every ``steps // VALIDATION_CHECKS`` steps.
    """
    device = train[0].device
    n_train = train[0].shape[0]
    batch_size = min(batch_size, n_train)
    optimizer = (
        torch.optim.AdamW(measure.parameters(), lr=lr, weight_decay=weight_decay)
        if weight_decay
        else torch.optim.Adam(measure.parameters(), lr=lr)
    )
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        if lr_schedule == "cosine"
        else None
    )
    history = torch.empty(steps, device=device)
    step_seconds = np.empty(steps)
    # Each KL part adapts its own negatives (the terms of a decomposed measure, or the measure).
    parts = list(getattr(measure, "terms", [measure]))
    ess_sum = torch.zeros(len(parts), device=device)
    keeper = _BestOnValidation(measure, validation, steps)
    keeper.check(0)
    measure.train()
    batches_per_epoch = n_train // batch_size
    bar = tqdm(range(steps), desc=f"{type(measure).__name__}", disable=not progress, leave=False)
    for step in bar:
        started = time.perf_counter()
        if step % batches_per_epoch == 0:
            epoch_order = torch.randperm(n_train, generator=generator, device=device)
        start = (step % batches_per_epoch) * batch_size
        idx = epoch_order[start : start + batch_size]
        loss = measure(*(t.index_select(0, idx) for t in train))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history[step] = measure.last_bound
        if auto_negatives:
            ess_sum += torch.stack(
                [Fn.effective_sample_fraction(part.last_product_scores) for part in parts]
            )
            if (step + 1) % AUTO_CHECK_STEPS == 0:
                # One host synchronisation per AUTO_CHECK_STEPS steps.
                for part, low in zip(
                    parts, (ess_sum < AUTO_ESS_FRACTION * AUTO_CHECK_STEPS).tolist()
                ):
                    if low:
                        part.negatives = min(2 * part.negatives, AUTO_MAX_NEGATIVES)
                ess_sum.zero_()
        step_seconds[step] = time.perf_counter() - started
        keeper.check(step + 1)
        if progress and (step + 1) % 100 == 0:
            bar.set_postfix(bound=f"{history[max(0, step - 99) : step + 1].mean().item():.3f}")
    keeper.restore()
    return history.cpu().numpy(), step_seconds


class _BestOnValidation:
    """Keeps the measure's state whose validation bound, less one standard error, is highest.

    Checked before the first step, at steps 1, 2, 4, 8, ... (with few rows the critic overfits
    within a few epochs) and every ``steps // VALIDATION_CHECKS`` steps. Ranking by the bound less
    its standard error keeps the untrained critic (about 0, with almost no spread) unless a trained
    one beats it by more than the noise of the validation rows. Without validation rows it does
    nothing and the final critic is kept.
    """

    def __init__(self, measure, validation: list[torch.Tensor], steps: int) -> None:
        self.measure = measure
        self.validation = validation
        self.enabled = validation[0].shape[0] > 0
        every = max(1, steps // VALIDATION_CHECKS)
        doubling = {2**k for k in range(int(math.log2(steps)) + 1)}
        self.at = {0, steps} | doubling | set(range(every, steps, every))
        self.best = -math.inf
        self.state: dict | None = None

    def check(self, step: int) -> None:
        if not self.enabled or step not in self.at:
            return
        score = self._score()
        if score > self.best:
            self.best = score
            self.state = copy.deepcopy(self.measure.state_dict())
        self.measure.train()

    def _score(self) -> float:
        """The validation bound less ``VALIDATION_MARGIN`` standard errors."""
        value, stderr = _evaluate(self.measure, self.validation, None, EVAL_PRODUCT_ROWS // 16)
        return value - VALIDATION_MARGIN * (stderr if math.isfinite(stderr) else 0.0)

    def restore(self) -> None:
        """Load the best state, then shrink its scores toward the null score as far as the
        validation rows ask (:attr:`DependencyMeasure.shrink`; 0 when no trained critic
        beats a constant one by a standard error)."""
        if self.state is None:
            return
        self.measure.load_state_dict(self.state)
        parts = list(getattr(self.measure, "terms", [self.measure]))
        best, kept = -math.inf, 1.0
        # Too few validation rows cannot tell a critic that generalises from a lucky one
        # (3 Gaussian views at 1 nat, 10 validation rows: a kept critic read +0.7 there and
        # -0.7 on fresh rows): then only the constant critic is trusted.
        few = self.validation[0].shape[0] < MIN_VALIDATION_ROWS
        for shrink in (0.0,) if few else SHRINKS:
            for part in parts:
                part.shrink = shrink
            score = self._score()
            if score > best + 1e-12:
                best, kept = score, shrink
        for part in parts:
            part.shrink = kept


# -- held-out evaluation ----------------------------------------------------------------------------
def _evaluate(
    measure,
    test: list[torch.Tensor],
    eval_negatives: int | None,
    product_rows: int = EVAL_PRODUCT_ROWS,
) -> tuple[float, float]:
    """The bound on these rows and its standard error over disjoint folds of them; by default
    ``eval_negatives`` draws at least ``product_rows`` product rows."""
    rows = test[0].shape[0]
    if eval_negatives is None:
        eval_negatives = max(measure.negatives, math.ceil(product_rows / rows))
    value = float(measure.estimate(*test, negatives=eval_negatives))
    folds = min(STDERR_FOLDS, rows // max(2, len(test)))
    if folds < 2:
        return value, math.nan
    pieces = [torch.tensor_split(t, folds) for t in test]
    fold_values = [
        float(measure.estimate(*fold, negatives=eval_negatives)) for fold in zip(*pieces)
    ]
    return value, float(np.std(fold_values, ddof=1) / math.sqrt(folds))


def _warn_if_untrustworthy(result: EstimateResult) -> None:
    value, stderr = result.value, result.stderr
    spread = f" ± {stderr:.3f}" if math.isfinite(stderr) else ""
    if all(part.shrink == 0.0 for part in getattr(result.measure, "terms", [result.measure])):
        warnings.warn(
            f"no critic beat a constant one on the {result.n_validation} validation rows, so the "
            "value is the constant critic's 0: these rows show no dependency that can be told "
            "from noise.",
            EstimateWarning,
            stacklevel=3,
        )
        return
    if value < 0 and not value + 2 * stderr >= 0:  # below 0 by more than 2 standard errors
        warnings.warn(
            f"the held-out value {value:.3f}{spread} is below 0: the critic learned a dependency "
            "that does not hold on new rows (a constant critic reads 0). Use more rows or fewer "
            "steps.",
            EstimateWarning,
            stacklevel=3,
        )
    gap = result.train_bound - value
    if gap > max(
        0.25 * abs(result.train_bound), 3 * (stderr if math.isfinite(stderr) else 0), 0.05
    ):
        warnings.warn(
            f"the held-out value {value:.3f}{spread} is far below the final training bound "
            f"{result.train_bound:.3f}: the critic overfits the {result.n_train} training rows. "
            "Use more rows, fewer steps or weight_decay.",
            EstimateWarning,
            stacklevel=3,
        )
    if result.n_test < FEW_TEST_ROWS:
        warnings.warn(
            f"the value {value:.3f}{spread} comes from only {result.n_test} held-out rows "
            f"(fewer than {FEW_TEST_ROWS}); read it with its standard error.",
            EstimateWarning,
            stacklevel=3,
        )


# -- thorough ---------------------------------------------------------------------------------------
def thorough_alternative(value: float, n_views: int) -> tuple[str, dict] | None:
    """The run ``thorough=True`` adds after a default run that read ``value`` nats on ``n_views``.

    Returns its name in ``EstimateResult.candidates`` and the options of :func:`estimate` it
    changes, or ``None`` where there is none (2 views at ``THOROUGH_SPLIT_NATS`` or more).
    """
    if value < THOROUGH_SPLIT_NATS:
        return "weight_decay", {"weight_decay": THOROUGH_WEIGHT_DECAY}
    if n_views >= 3:
        return "tree_weight_decay", {"decomposition": "tree", "weight_decay": THOROUGH_WEIGHT_DECAY}
    return None


def _thorough(views, measure, measure_kwargs: dict, **options) -> EstimateResult:
    """``estimate(..., thorough=True)``: the default run, one alternative, the larger value."""
    if not isinstance(measure, str):
        raise TypeError("thorough=True applies only when measure is given by name")
    if measure not in KL_RECIPE_MEASURES or measure_kwargs.get("divergence", "kl") != "kl":
        got = repr(measure)
        if measure == "f":
            got += f" with divergence {measure_kwargs['divergence']!r}"
        raise ValueError(f"thorough=True needs 'dv', or 'f' with the KL divergence; got {got}")
    if options["decomposition"] is not None or options["weight_decay"]:
        raise ValueError(
            "thorough=True chooses the decomposition and the weight decay itself; got "
            f"decomposition={options['decomposition']!r}, weight_decay={options['weight_decay']}"
        )
    first = estimate(views, measure, **options, **measure_kwargs)
    alternative = thorough_alternative(first.value, len(views))
    if alternative is None:
        first.candidates = {"default": first.value}
        return first
    name, change = alternative
    other = estimate(views, measure, **{**options, **change}, **measure_kwargs)
    kept = other if other.value > first.value else first
    kept.candidates = {"default": first.value, name: other.value}
    return kept
