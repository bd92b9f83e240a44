"""Train a measure's critic on arrays; choose on validation rows; report on untouched test rows.

``estimate`` is a short composition of named parts: the input checks (every bad input is named
before any training; ``inputs``), the split into training, validation and test rows (``rows``),
the transform fitted on the training rows, the candidates (``candidates``: each a name, the
condition under which it runs and how it runs; the default and ``thorough`` policies are lists
of them), the choice on the validation rows, and the value on the test rows (``protocol``).
Every constant of the policy lives in one frozen ``EstimateConfig``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from mdmest._base import DependencyMeasure
from mdmest._validation import check_choice, check_device
from mdmest.decomposition import DecomposedTotalCorrelation
from mdmest.estimation.candidates import (
    CANDIDATES,
    DEFAULT,
    THOROUGH,
    Candidate,
    resolve_candidates,
)
from mdmest.estimation.closed_forms import gaussian_bound, size_bound, size_dependence
from mdmest.estimation.config import EstimateConfig
from mdmest.estimation.diagnostics import warn_if_untrustworthy
from mdmest.estimation.evaluation import EVAL_PRODUCT_ROWS
from mdmest.estimation.guard import guard_measure
from mdmest.estimation.inputs import (
    EstimateInputError,
    _as_arrays,
    _check_instance_options,
    _check_options,
    _check_settings,
    _instance_placement,
    _rejected_as_input,
)
from mdmest.estimation.protocol import Outcome, prepare
from mdmest.estimation.recipes import (
    DECOMPOSITION_CHOICES,
    KL_RECIPE_MEASURES,
    _recipe,
    _resolve_lr,
    _resolve_transform,
    overfits,
    still_rising,
)
from mdmest.estimation.result import CandidateValue, EstimateResult, EstimateWarning
from mdmest.estimation.rows import minimum_rows, part_sizes
from mdmest.estimation.training import _cuda, _flush_denormal, _parts
from mdmest.transforms import INVARIANT_TRANSFORMS

__all__ = [
    "estimate",
    "EstimateResult",
    "EstimateWarning",
    "EstimateInputError",
    "EstimateConfig",
    "Candidate",
    "CandidateValue",
    "CANDIDATES",
    "DEFAULT",
    "THOROUGH",
    "minimum_rows",
    "part_sizes",
    "overfits",
    "still_rising",
    "gaussian_bound",
    "size_bound",
    "size_dependence",
    "EVAL_PRODUCT_ROWS",
]


def estimate(
    views: Sequence[np.ndarray | torch.Tensor],
    measure: str | DependencyMeasure | DecomposedTotalCorrelation = "dv",
    *,
    transform: str | None = "auto",
    decomposition: str | None = None,
    thorough: bool = False,
    candidates: Sequence[str | Candidate] | None = None,
    refit: bool = True,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float | None = None,
    lr_schedule: str | None = "cosine",
    weight_decay: float = 0.0,
    negatives: int | str | None = None,
    test_fraction: float = 0.2,
    eval_negatives: int | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    config: EstimateConfig | None = None,
    **measure_kwargs,
) -> EstimateResult:
    r"""Estimate the dependency among K views from paired rows.

    **The protocol.** The rows are split once into training, validation and test parts
    (``test_fraction`` of them for the test part; of the rest 12.5% for validation, 25% below
    4,000 rows; ``part_sizes`` gives the counts). A transform of each view is fitted on the
    training rows. Each candidate is fitted on the training rows and valued on the validation
    rows; the one with the highest validation value is chosen; the test rows are read for its
    value and standard error, and for nothing that was chosen. Within a trained critic the
    validation rows also pick the state kept (the best of the untrained critic and checks during
    training) and how far its scores are shrunk toward a constant.

    **The candidates** (``mdmest.estimation.candidates``). "critic": the critic of the measure
    asked for, always. For "dv" and "f" with KL by name, by default: "extended" (the critic
    trained as long again where it was still learning), one refit where the critic overfits
    ("weight_decay"; "tree_weight_decay" with 3+ views at 1.5 nats or more; "strong_weight_decay"
    where weight decay overfits too; from 5,000 rows), "deeper" (a residual critic where the
    first one learned something without overfitting), and two bounds that need no training:
    "size_bound" and "gaussian_copula".
    ``thorough=True`` adds the weight-decay or tree alternative in any case.
    ``candidates=["critic"]`` keeps only the trained critic (what comparisons of measures use).

    **The start.** For "dv" and "f" with KL by name on views of 8 or more features together
    (``config.mixture_min_features``), where a Gaussian mixture of 2 to 8
    components fitted to the training rows reads more dependency on validation rows than one
    Gaussian does (by more than the noise), the first critic and ``extended`` start from that
    mixture's log-density ratio (:class:`~mdmest.critics.OffsetCritic`); ``deeper``, the
    weight-decay refits and a decomposition's terms start from nothing, so the validation rows
    choose between the two starts; elsewhere every critic starts from nothing.
    ``config=EstimateConfig(mixture_max_components=0)`` always starts from nothing.

    Parameters
    ----------
    views : sequence of array-like
        K arrays (numpy or torch) of shapes (n, d_k), row i of each from the same sample; a 1-d
        array is one feature. Integer and boolean arrays are read as floats.
    measure : str or DependencyMeasure
        "dv", "f" or "wasserstein" (built with ``measure_kwargs``), or a measure instance (the
        rows are cast to its parameters' dtype and moved to their device; only its own critic is
        a candidate). By name, "dv" and "f" get a GELU critic (and, where it does not overfit,
        the residual "deeper" candidate), the "shifted" sampler and ``negatives="auto"`` unless
        ``critic=``, ``sampler=`` or ``negatives=`` say otherwise.
    transform : str, optional
        A map of each view fitted on the training rows and applied to all rows before the
        critic. "per_view" (the default for "dv" and "f"): each view gets whichever of the
        whitened copula and the radial map leaves its training rows closer to a standard normal
        view (``mdmest.transforms.fit_per_view``). "copula": each feature's empirical
        distribution function, then the normal quantile; "whitened_copula": the same, then
        whitened. "radial": each view whitened by its (Tyler) shape, its radius mapped to that
        of a standard normal view, its direction kept (``mdmest.transforms.RadialGaussian``;
        undoes the shared scale of an elliptical view such as a Student-t). These leave the
        total correlation unchanged and make heavy tails, outliers and odd scales harmless.
        "scale": all features centred and divided by one common scale, the value multiplied
        back (the Wasserstein value stays in the views' units). "auto" (default): "per_view"
        for "dv" and "f", "scale" for "wasserstein", ``None`` for another measure instance.
        ``None``: rows as given. The Gaussian-copula candidate is fitted in a whitened copula
        of its own whatever the critics saw.
    decomposition : str, optional
        For "dv" and "f" by name: "tree" or "chain" trains the total correlation as a sum of
        K − 1 two-group mutual informations, one critic each.
    thorough : bool
        For "dv" and "f" (KL) by name: the ``THOROUGH`` list of candidates (about twice the
        training).
    candidates : sequence of str or Candidate, optional
        The candidates to run, by name (``CANDIDATES``) or as ``Candidate`` objects of your own;
        "critic" runs first whether named or not (a ``Candidate`` named "critic" replaces it).
        ``None``: ``DEFAULT`` (or ``THOROUGH``).
    refit : bool
        ``False`` is ``candidates=["critic"]`` (earlier releases' name for it).
    steps, batch_size, lr : int, int, float
        Optimisation budget of each trained candidate: Adam steps, rows per step, learning rate
        (``None``, the default: 3e-3 for "dv" and "f" with KL by name, where at 2,000 steps it
        fits strong dependency that 1e-3 underfits; 1e-3 for "wasserstein" and measure
        instances).
    lr_schedule : str, optional
        "cosine" (default) decays the learning rate to 0 over ``steps``; ``None`` keeps it.
    weight_decay : float
        Decoupled weight decay of the critic's optimiser (0, the default: plain Adam). Given, the
        refits that change it do not run.
    negatives : int or "auto", optional
        Product rows per joint row in each step. "auto" (default for "dv" and "f" with KL by
        name) starts at one and doubles, up to 16, while the product rows' effective sample
        fraction is below 0.1. ``None``: the measure's own.
    test_fraction : float
        Fraction of rows in the test part, in (0, 1).
    eval_negatives : int, optional
        Product rows per row for a value (default: at least 2^18 product rows for the test
        value, 2^16 for a validation value).
    seed : int
        Seeds the split, the batches, the shuffles and the initialisation: the result is
        deterministic for a seed.
    progress : bool
        Show a tqdm progress bar.
    device : str or torch.device, optional
        Where to train (default: CPU, or a given measure's device).
    config : EstimateConfig, optional
        The policy's constants (``EstimateConfig()`` by default).
    **measure_kwargs
        Options of the measure built by name (``divergence="js"``, ``lipschitz=``, ``critic=``,
        ...); an unknown one raises an error listing the valid ones.

    Returns
    -------
    EstimateResult
        ``value`` and ``stderr`` on the test rows, ``chosen`` (the candidate they come from) and
        ``candidates`` (each one's validation and test value).

    Raises
    ------
    EstimateInputError
        A bad view, option or setting, before any training.

    Warns
    -----
    EstimateWarning
        When the value cannot be right as it stands: views that are (nearly) functions of each
        other (beyond what the rows can show), no candidate better than a constant critic, a
        value below 0 or far below the training bound, or fewer than 250 test rows.

    Examples
    --------
    >>> from mdmest.tasks import gaussian_task_with_tc
    >>> task = gaussian_task_with_tc(1.0, [2, 2])
    >>> result = estimate(task.sample(2000), "dv", steps=50, progress=False)
    >>> result.chosen in result.candidates, result.history.shape, result.n_test
    (True, (50,), 400)
    """
    config = EstimateConfig() if config is None else config
    lr = _resolve_lr(lr, measure, measure_kwargs)
    options = dict(
        decomposition=decomposition, steps=steps, batch_size=batch_size, lr=lr,
        lr_schedule=lr_schedule, weight_decay=weight_decay, negatives=negatives,
        test_fraction=test_fraction, eval_negatives=eval_negatives, seed=seed,
        progress=progress,
    )  # fmt: skip
    with _rejected_as_input():  # every check, before any training
        if not isinstance(config, EstimateConfig):
            raise TypeError(f"config must be an EstimateConfig, got {type(config).__name__}")
        if thorough:
            _check_thorough(measure, measure_kwargs, decomposition, weight_decay)
        policy = resolve_candidates(
            ["critic"] if candidates is None and not refit else candidates, thorough
        )
        arrays, transform, dtype, device = _checked(
            views, measure, measure_kwargs, transform, device, options
        )
    with _flush_denormal(), torch.random.fork_rng(devices=_cuda(device)):
        with _rejected_as_input():  # the split and the transforms
            data = prepare(
                arrays, measure, measure_kwargs, options, config, transform, dtype, device
            )
        done: dict[str, Outcome] = {}
        for candidate in policy:
            if candidate.name not in done and candidate.applies(data, done):
                start = time.perf_counter()
                outcome = candidate.run(data, done)
                if outcome is not None:
                    outcome.seconds = time.perf_counter() - start
                    done[candidate.name] = outcome
    result = _result(data, done)
    if result.transform in INVARIANT_TRANSFORMS:
        guard_measure(result.measure, measure_kwargs.get("names"))
    warn_if_untrustworthy(result, data)
    return result


def _checked(views, measure, measure_kwargs: dict, transform, device, options: dict):
    """The views as checked float64 arrays, the transform, and the rows' dtype and device; a
    measure by name is built once here so that a bad option is named before any training."""
    _check_settings(
        options["steps"], options["batch_size"], options["lr"], options["lr_schedule"],
        options["weight_decay"], options["negatives"], options["eval_negatives"],
        options["test_fraction"],
    )  # fmt: skip
    decomposition = options["decomposition"]
    check_choice("decomposition", decomposition, DECOMPOSITION_CHOICES)
    if isinstance(measure, str):
        _check_options(measure, decomposition, measure_kwargs, estimate)
        dtype, device = torch.float32, check_device(device or "cpu")
    else:
        _check_instance_options(measure, decomposition, measure_kwargs, options["negatives"])
        dtype, device = _instance_placement(measure, device)
    names = measure_kwargs.get("names") or getattr(measure, "names", None)
    arrays = _as_arrays(views, names)
    widths = [a.shape[1] for a in arrays]
    if not isinstance(measure, str) and tuple(widths) != tuple(measure.dims):
        raise ValueError(
            f"got {len(widths)} views of widths {tuple(widths)}; the measure was built for "
            f"dims={tuple(measure.dims)}"
        )
    if isinstance(measure, str):
        _recipe(measure, widths, decomposition, options["negatives"], measure_kwargs)
    return arrays, _resolve_transform(transform, measure), dtype, device


def _check_thorough(measure, measure_kwargs: dict, decomposition, weight_decay) -> None:
    if not isinstance(measure, str):
        raise TypeError("thorough=True applies only when measure is given by name")
    if measure not in KL_RECIPE_MEASURES or measure_kwargs.get("divergence", "kl") != "kl":
        got = repr(measure)
        if measure == "f":
            got += f" with divergence {measure_kwargs['divergence']!r}"
        raise ValueError(f"thorough=True needs 'dv', or 'f' with the KL divergence; got {got}")
    if decomposition is not None or weight_decay:
        raise ValueError(
            "thorough=True chooses the decomposition and the weight decay itself; got "
            f"decomposition={decomposition!r}, weight_decay={weight_decay}"
        )


def _result(data, done: dict[str, Outcome]) -> EstimateResult:
    """The candidate with the highest validation value (the first among equals), valued once on
    the test rows; every candidate's validation and test values beside it."""
    ranked = [o for o in done.values() if math.isfinite(o.validation[0])] or list(done.values())
    chosen = max(ranked, key=lambda o: o.validation[0])
    value, stderr = chosen.read_test()
    if chosen.constant:  # 0 exactly: the spread the unshrunk critic has on the same rows
        stderr = _unshrunk_stderr(chosen)
    values = {name: _candidate_value(outcome) for name, outcome in done.items()}
    trained = (
        chosen if chosen.measure is not None and chosen.history is not None else done["critic"]
    )
    owner = chosen if chosen.measure is not None else trained  # the transform its rows are in
    split = data.split
    return EstimateResult(
        value=value,
        stderr=stderr,
        history=trained.history,
        measure=owner.measure,
        n_train=len(split.train),
        n_validation=len(split.validation),
        n_test=len(split.test),
        train_bound=trained.train_bound,
        step_seconds=trained.step_seconds,
        transform=owner.transform,
        transforms=owner.fitted,
        value_scale=chosen.value_scale,
        chosen=chosen.name,
        candidates=values,
        constant=chosen.constant,
        test_rows=split.test,
    )


def _candidate_value(outcome: Outcome) -> CandidateValue:
    """The record of one candidate's run, with the fitted mixture its critic started from
    (:class:`~mdmest.critics.OffsetCritic`'s base; 0 components: from nothing)."""
    base = getattr(getattr(outcome.measure, "critic", None), "base", None)
    components = int(getattr(base, "components", 0))
    return CandidateValue(
        *outcome.validation,
        *outcome.read_test(),
        trained=outcome.history is not None,
        seconds=outcome.seconds,
        start=components,
        start_covariance=getattr(base, "covariance", "") if components else "",
    )


def _unshrunk_stderr(outcome: Outcome) -> float:
    parts = _parts(outcome.measure)
    try:
        for part in parts:
            part.shrink = 1.0
        return outcome.score("test")[1]
    finally:
        for part in parts:
            part.shrink = 0.0
