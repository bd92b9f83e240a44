"""Train a measure's critic on arrays and report the bound on held-out rows.

:func:`estimate` is a short composition of named parts: the input checks (every bad input is named
before any training; :mod:`~mdmest.estimation.inputs`), the split into training, validation and
held-out rows (:mod:`~mdmest.estimation.rows`), the per-feature transform fitted on the training
rows (:mod:`mdmest.transforms`), the recipe (which critic, sampler and negatives a measure gets;
:mod:`~mdmest.estimation.recipes`), the training loop (:mod:`~mdmest.estimation.training`) and the
held-out evaluation (:mod:`~mdmest.estimation.evaluation`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from mdmest._base import DependencyMeasure
from mdmest._validation import check_choice, check_device
from mdmest.decomposition import DecomposedTotalCorrelation
from mdmest.estimation.evaluation import EVAL_PRODUCT_ROWS, _evaluate, _warn_if_untrustworthy
from mdmest.estimation.inputs import (
    EstimateInputError,
    _as_arrays,
    _check_instance_options,
    _check_options,
    _check_settings,
    _instance_placement,
    _rejected_as_input,
)
from mdmest.estimation.recipes import (
    DECOMPOSITION_CHOICES,
    EXTEND_LR_FACTOR,
    KL_RECIPE_MEASURES,
    REFIT_STRONG_WEIGHT_DECAY,
    REFIT_WEIGHT_DECAY,
    SIZES_NATS,
    THOROUGH_SPLIT_NATS,
    THOROUGH_WEIGHT_DECAY,
    _auto_negatives,
    _fit_transforms,
    _null_mean,
    _recipe,
    _resolve_transform,
    _value_scale,
    gaussian_bound,
    overfits,
    refit_alternative,
    size_bound,
    size_dependence,
    still_rising,
    thorough_alternative,
)
from mdmest.estimation.result import EstimateResult, EstimateWarning
from mdmest.estimation.rows import _split, minimum_rows
from mdmest.estimation.training import (
    _BestOnValidation,  # noqa: F401  (tests patch its check through mdmest.estimation)
    _cuda,
    _evaluated,
    _flush_denormal,
    _go_cross_rank,
    _train,
)
from mdmest.transforms import COPULA_TRANSFORMS

__all__ = [
    "estimate",
    "EstimateResult",
    "EstimateWarning",
    "EstimateInputError",
    "minimum_rows",
    "overfits",
    "refit_alternative",
    "gaussian_bound",
    "size_bound",
    "size_dependence",
    "still_rising",
    "thorough_alternative",
    "EVAL_PRODUCT_ROWS",
    "REFIT_WEIGHT_DECAY",
    "REFIT_STRONG_WEIGHT_DECAY",
    "SIZES_NATS",
    "THOROUGH_SPLIT_NATS",
    "THOROUGH_WEIGHT_DECAY",
]


def estimate(
    views: Sequence[np.ndarray | torch.Tensor],
    measure: str | DependencyMeasure | DecomposedTotalCorrelation = "dv",
    *,
    transform: str | None = "auto",
    decomposition: str | None = None,
    thorough: bool = False,
    refit: bool = True,
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
        ones) and ``negatives="auto"`` (see docs/benchmarks.md, section 3 "Accuracy ladder").
    transform : str, optional
        A map of each view fitted on the training rows and applied to all rows before the critic
        (:class:`~mdmest.transforms.GaussianCopula`, :class:`~mdmest.transforms.CommonScale`). "copula": each feature's empirical
        distribution function, then the standard-normal quantile. "whitened_copula": the same,
        then the view is whitened (an invertible linear map fitted on the same rows). Total
        correlation and every f-divergence are unchanged by such maps (they are invertible on each
        view). The first makes heavy tails, outliers and odd scales harmless (untransformed,
        pairs of Student-t vectors with 1 or 2 degrees of freedom read far below zero); the second
        also makes dependency carried by directions of small variance as visible as any other
        (Gaussian views with random within-view spectra); measured: see docs/core.md, section
        "`estimate` — a value from arrays". "scale": every feature centred and all divided by one
        common scale, the value multiplied back (the Wasserstein value is unchanged by
        translations and proportional to a common scale, so it stays in the views' units, while
        the critic trains on rows of unit size: untransformed, views scaled by 1e-3 or 1e3 read
        −72% and +187%; see docs/core.md, "Wasserstein dependency"). "auto" (default):
        "whitened_copula" for "dv" and "f" (any divergence), "scale" for "wasserstein" (the
        copula maps there raise), ``None`` for any other measure instance. ``None``: the rows as
        given (the values of earlier releases).
    decomposition : str, optional
        For "dv" and "f" by name. ``None`` (default): one critic over all the views. "tree" or
        "chain": the total correlation as a sum of K − 1 two-group mutual informations, one critic
        each (:class:`~mdmest.measures.DecomposedTotalCorrelation`), trained together on the same
        batches: far better with strong dependency among 3 or more views, far worse with weak
        dependency among wide views (see docs/benchmarks.md, section 3 "Accuracy ladder").
    thorough : bool
        The library's most accurate setting, for "dv" and "f" (KL) by name, at twice the
        training: the default estimate first (with its ``refit``); then the alternative that its
        first run's value points to (:func:`thorough_alternative`), trained with the same seed,
        unless the refit already trained it. The largest held-out value is kept (all are lower
        bounds); ``result.candidates`` has every value and ``result.measure`` is the kept one
        (see docs/benchmarks.md, section 3, "How the two alternatives were found").
    refit : bool
        For "dv" and "f" (KL) by name, with enough rows to need no validation part (at least
        5000 at the default split): one more training run where the first shows it fell short,
        keeping the larger held-out value (``result.candidates`` then has both; see docs/core.md,
        "When the first run falls short"). The critic **overfits** (held-out value below the final
        training bound by more than 5% of it, 3 standard errors and 0.02 nats; :func:`overfits`):
        trained again from the same seed with ``thorough``'s alternative
        (:func:`refit_alternative`: weight decay 0.3, "weight_decay"; with 3 or more views and a
        first value of 1.5 nats or more, the tree decomposition with it, "tree_weight_decay";
        where the views' sizes alone show more dependency than the first run and than 0.02
        nats (:func:`size_dependence`, ``SIZES_NATS``), a critic that also reads each view's size instead of weight
        decay, "view_sizes", not with a decomposition or a ``critic`` of the caller's; no refit
        when ``weight_decay`` is given); where weight decay overfits too, a third run with weight
        decay 1.0 ("strong_weight_decay"). The critic **underfits** (training bound still rising
        by more than 3% from the third to the last quarter of the steps, no overfitting;
        :func:`still_rising`): the same critic trained ``steps`` more, with a fresh optimiser and
        schedule at twice the learning rate ("extended"). Where neither holds, nothing is added;
        otherwise the run costs about twice the training (three times with a third run).
        With any number of rows (from 100 held-out rows), two bounds that need no training are
        candidates too, on the held-out rows in the transform the critics saw: the bound from the
        views' sizes (:func:`size_bound`, "size_bound"; with few rows of heavy-tailed views often
        far above what a critic can learn from them) and, in a copula transform, the DV bound of
        the Gaussian log-density ratio fitted on the other rows (:func:`gaussian_bound`,
        "gaussian_copula"; near the truth for per-feature maps of Gaussian views with many
        features, where trained critics fall short).
        ``False``: the first run as it is.
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

    Raises
    ------
    EstimateInputError
        A bad view, option or setting, before any training (a ``ValueError`` and a
        ``TypeError``).

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
    options = dict(
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
    if thorough:
        result = _thorough(views, measure, measure_kwargs, refit, options)
    else:
        result = _trained(views, measure, measure_kwargs, refit, options)
    if refit and _kl_by_name(measure, measure_kwargs):
        result = _with_closed_forms(views, result, seed, eval_negatives)
    _warn_if_untrustworthy(result)
    return result


def _trained(views, measure, measure_kwargs: dict, refit: bool, options: dict) -> EstimateResult:
    """The critic's part of :func:`estimate`: one run, and with ``refit`` where it falls short,
    a second (:func:`_refit`) or the same run extended."""
    result = _estimate_once(
        views,
        measure,
        measure_kwargs,
        **options,
        extend=refit and _kl_by_name(measure, measure_kwargs),
    )
    if refit and _refits(measure, measure_kwargs, options["weight_decay"], result):
        result = _refit(views, measure, measure_kwargs, options, result)
    return result


def _kl_by_name(measure, measure_kwargs: dict) -> bool:
    return measure in KL_RECIPE_MEASURES and measure_kwargs.get("divergence", "kl") == "kl"


def _refit(views, measure, measure_kwargs: dict, options: dict, first: EstimateResult):
    """``refit=True`` after a first run that overfits: :func:`refit_alternative` (weight decay,
    the tree, or a critic that also reads the views' sizes where they alone show more than the
    first run), then, where weight decay overfits too, weight decay
    ``REFIT_STRONG_WEIGHT_DECAY``; the largest held-out value is kept, with every value in
    ``candidates``."""
    # The view-size critic replaces the MLP of the recipe: not with a decomposition or a critic
    # of the caller's.
    sizes_possible = options["decomposition"] is None and "critic" not in measure_kwargs
    sizes = 0.0
    if sizes_possible:  # less its mean under independence
        arrays = _as_arrays(views, None)
        sizes = size_dependence(first.transform_views(arrays)) - _null_mean(
            len(arrays), len(arrays[0])
        )
    name, change = refit_alternative(
        first.value, len(first.measure.dims), options["decomposition"], sizes
    )
    second = _estimate_once(views, measure, measure_kwargs, **{**options, **change})
    candidates = {"default": first.value, name: second.value}
    kept = second if second.value > first.value else first
    if name == "weight_decay" and overfits(second.train_bound, second.value, second.stderr):
        # Still overfit (weak dependency among many features): a stronger weight decay.
        third = _estimate_once(
            views, measure, measure_kwargs, **{**options, "weight_decay": REFIT_STRONG_WEIGHT_DECAY}
        )
        candidates["strong_weight_decay"] = third.value
        kept = third if third.value > kept.value else kept
    kept.candidates = candidates
    return kept


def _with_closed_forms(
    views, result: EstimateResult, seed: int, eval_negatives: int | None
) -> EstimateResult:
    """``refit=True``: the bounds that need no training, on the held-out rows in the transform
    the critics saw, as more candidates, each value and standard error kept where it beats every
    critic: :func:`size_bound` ("size_bound") and, in a Gaussian-copula transform,
    :func:`gaussian_bound` fitted on the other rows ("gaussian_copula")."""
    mapped = result.transform_views(_as_arrays(views, None))
    held_out = np.zeros(len(mapped[0]), dtype=bool)
    held_out[result.test_rows] = True
    test = [a[held_out] for a in mapped]
    found = {"size_bound": size_bound(test, seed)}
    if result.transform in COPULA_TRANSFORMS:
        train = [a[~held_out] for a in mapped]
        found["gaussian_copula"] = gaussian_bound(train, test, seed, eval_negatives)
    candidates = dict(result.candidates or {"default": result.value})
    for name, (bound, stderr) in found.items():
        if math.isnan(bound):
            continue
        candidates[name] = bound
        if bound > result.value:
            result.value, result.stderr = bound, stderr
    result.candidates = candidates
    return result


def _refits(measure, measure_kwargs: dict, weight_decay: float, result: EstimateResult) -> bool:
    """Whether ``refit=True`` trains again: a KL-type measure by name, trained without weight
    decay and without validation rows (with them, the critic kept was already chosen on them),
    whose held-out value fell far below its training bound."""
    return (
        _kl_by_name(measure, measure_kwargs)
        and not weight_decay
        and result.n_validation == 0
        and result.candidates is None  # not trained a second time already
        and overfits(result.train_bound, result.value, result.stderr)
    )


def _estimate_once(
    views,
    measure,
    measure_kwargs: dict,
    *,
    transform,
    decomposition,
    steps,
    batch_size,
    lr,
    lr_schedule,
    weight_decay,
    negatives,
    test_fraction,
    eval_negatives,
    seed,
    progress,
    device,
    extend: bool = False,
    view_sizes: bool = False,
) -> EstimateResult:
    """One run of :func:`estimate`: the checks, the split, the transform, the recipe, training
    and the held-out value (no warnings); with ``extend``, training once as long again where the
    bound was still rising and the critic does not overfit (:func:`still_rising`)."""
    with _rejected_as_input():  # every check, before any training
        _check_settings(
            steps,
            batch_size,
            lr,
            lr_schedule,
            weight_decay,
            negatives,
            eval_negatives,
            test_fraction,
        )
        check_choice("decomposition", decomposition, DECOMPOSITION_CHOICES)
        if isinstance(measure, str):
            _check_options(measure, decomposition, measure_kwargs, estimate)
            dtype, device = torch.float32, check_device(device or "cpu")
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
        with _rejected_as_input():  # the split, the transforms and the measure by name
            split = _split(num_rows, len(arrays), test_fraction, generator)
            fitted = _fit_transforms(transform, [a[split.train] for a in arrays])
            if fitted:
                arrays = [f.transform(a) for f, a in zip(fitted, arrays)]
            tensors = [torch.as_tensor(a).to(device=device, dtype=dtype) for a in arrays]
            if isinstance(measure, str):
                measure, auto_negatives = _recipe(
                    measure,
                    [t.shape[1] for t in tensors],
                    decomposition,
                    negatives,
                    measure_kwargs,
                    view_sizes,
                )
            else:
                auto_negatives = _auto_negatives(measure, negatives, by_name=False)
        measure = measure.to(device)
        _go_cross_rank(measure)  # under torchrun: the rows of every step split over the ranks
        train, validation, test = (
            [t.index_select(0, torch.as_tensor(rows, device=device)) for t in tensors]
            for rows in (split.train, split.validation, split.test)
        )
        measure.generator = generator
        candidates = None
        try:
            history, step_seconds = _train(
                measure, train, validation, steps, batch_size, lr, lr_schedule, weight_decay,
                auto_negatives, progress, generator,
            )  # fmt: skip
            value, stderr = _evaluate(_evaluated(measure), test, eval_negatives)
            if extend and split.sizes[1] == 0 and still_rising(history, value, stderr):
                # Underfit: the same critic, trained as long again, kept if it reads higher.
                first_state, first_value, first_stderr = (
                    copy.deepcopy(measure.state_dict()),
                    value,
                    stderr,
                )
                more, more_seconds = _train(
                    measure, train, validation, steps, batch_size, lr * EXTEND_LR_FACTOR,
                    lr_schedule, weight_decay, auto_negatives, progress, generator,
                )  # fmt: skip
                history = np.concatenate([history, more])
                step_seconds = np.concatenate([step_seconds, more_seconds])
                value, stderr = _evaluate(_evaluated(measure), test, eval_negatives)
                candidates = {"default": first_value, "extended": value}
                if first_value > value:
                    measure.load_state_dict(first_state)
                    value, stderr = first_value, first_stderr
        finally:
            measure.generator = None
    # In the views' units: the Wasserstein value on rows divided by a common scale, times it.
    unit = _value_scale(measure, fitted)
    value, stderr, history = value * unit, stderr * unit, history * unit
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
        value_scale=unit,
        candidates=candidates,
        test_rows=split.test,
    )
    return result


def _thorough(views, measure, measure_kwargs: dict, refit: bool, options: dict) -> EstimateResult:
    """``estimate(..., thorough=True)``'s critics: the default run (with its refit), one
    alternative, the larger value."""
    with _rejected_as_input():
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
    first = _trained(views, measure, measure_kwargs, refit, options)
    tried = dict(first.candidates or {"default": first.value})
    alternative = thorough_alternative(tried["default"], len(views))
    if alternative is None or alternative[0] in tried:  # none, or the refit already trained it
        first.candidates = tried
        return first
    name, change = alternative
    other = _trained(views, measure, measure_kwargs, False, {**options, **change})
    kept = other if other.value > first.value else first
    kept.candidates = {**tried, name: other.value}
    return kept
