"""Train a measure's critic on arrays and report the bound on held-out rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mdmest import functional as Fn
from mdmest.critics import MLPCritic
from mdmest.measures import (
    DECOMPOSITIONS,
    KL_MEASURES,
    DecomposedTotalCorrelation,
    DependencyMeasure,
    FTotalCorrelation,
    TotalCorrelation,
    make_measure,
)

__all__ = ["EstimateResult", "estimate"]

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


@dataclass
class EstimateResult:
    """What :func:`estimate` returns.

    Attributes
    ----------
    value : float
        The bound on the held-out rows with the final critic, its product side averaged over
        ``eval_negatives`` draws (nats for "dv" and "f" with KL, the views' units for
        "wasserstein").
    history : numpy.ndarray
        The bound on each training minibatch, one entry per step.
    measure : DependencyMeasure
        The trained measure (critic included), ready for ``estimate``/``scores`` on new rows.
    candidates : dict of str to float, optional
        With ``thorough=True``: the held-out value of each setting trained ("default", and
        "weight_decay" or "tree_weight_decay"), of which ``value`` is the larger. Otherwise ``None``.
    """

    value: float
    history: np.ndarray
    measure: DependencyMeasure | DecomposedTotalCorrelation
    candidates: dict[str, float] | None = None

    def __float__(self) -> float:
        return self.value


def _as_tensors(views: Sequence, device: torch.device) -> list[torch.Tensor]:
    if isinstance(views, (np.ndarray, torch.Tensor)):
        raise TypeError("views must be a sequence of K arrays (one per view), not a single array")
    tensors = []
    for i, view in enumerate(views):
        t = torch.as_tensor(view)
        if not t.is_floating_point():
            raise TypeError(f"view {i + 1} must have a floating dtype, got {t.dtype}")
        if t.dim() == 1:
            t = t.unsqueeze(1)
        tensors.append(t.to(device=device, dtype=torch.float32))
    return tensors


def estimate(
    views: Sequence[np.ndarray | torch.Tensor],
    measure: str | DependencyMeasure | DecomposedTotalCorrelation = "dv",
    *,
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
    part, with the final critic (never the best of several checkpoints, which would bias it upward).

    Parameters
    ----------
    views : sequence of array-like
        K arrays (numpy or torch) of shapes (n, d_k), row i of each from the same sample; a 1-d
        array is one feature.
    measure : str or DependencyMeasure
        "dv", "f" or "wasserstein" (built with ``measure_kwargs``), or a measure instance. By
        name, "dv" and "f" get the accuracy ladder's best recipe unless ``sampler=`` or
        ``critic=`` says otherwise: the "shifted" sampler, an
        :class:`~mdmest.critics.MLPCritic` with GELU activations (smooth critics fit the
        log-density ratio with less overfitting than ReLU ones) and ``negatives="auto"``
        (docs/benchmarks.md §3).
    decomposition : str, optional
        For "dv" and "f" by name. ``None`` (default): one critic over all the views. "tree" or
        "chain": the total correlation as a sum of K − 1 two-group mutual informations, one critic
        each (:class:`~mdmest.measures.DecomposedTotalCorrelation`), trained together on the same
        batches: far better with strong dependency among 3 or more views (4 views of 20
        features at 8 nats: −2.6% instead of −22%), far worse with weak dependency among wide
        views.
    thorough : bool
        The library's most accurate setting, for "dv" and "f" (KL) by name, at twice the
        training: the default estimate first; then the alternative that its value points to,
        trained with the same seed, with weight decay 0.3: on the tree decomposition when K >= 3
        and the value is at least 1.5 nats, else on one critic (skipped for 2 views at >= 1.5
        nats; :func:`thorough_alternative`). The larger held-out value is kept (both are lower
        bounds); ``result.candidates`` has both and ``result.measure`` is the kept one
        (docs/benchmarks.md §3).
    steps, batch_size, lr : int, int, float
        Optimisation budget: Adam steps, rows per step and learning rate.
    lr_schedule : str, optional
        "cosine" (default) decays the learning rate to 0 over ``steps`` (half a cosine), which
        settles the final critic and lowers the variance of the value; ``None`` keeps ``lr``
        constant.
    weight_decay : float
        Decoupled weight decay of the critic's optimiser (AdamW; 0, the default, is plain Adam).
        It regularises the critic where it overfits the joint rows, i.e. with weak dependency
        among wide views (2 views of 20 features at 0.5 nats, 0.3: −4.6% instead of −13.2%), and
        costs accuracy with strong dependency (at 4 nats: −9% instead of −2%).
    negatives : int or "auto", optional
        Product rows per joint row in each training step. "auto" (the default for "dv" and "f"
        by name) starts at one and doubles, up to 16, whenever the product rows' effective sample
        fraction over the last 100 steps is below 0.1: strong dependency makes
        :math:`\log \mathbb{E}_q[e^T]` an average over a few rows, and more rows fix that,
        while with weak dependency one negative regularises better (more overfit the joint rows).
        ``None``: the measure's own (one, unless built otherwise).
    test_fraction : float
        Fraction of rows held out for the reported value, in (0, 1).
    eval_negatives : int, optional
        Product rows drawn per held-out row for the reported value. Default: enough for at least
        2^18 product rows in all (64 for 4096 held-out rows). One draw is a noisy value at large
        dependency (its product-side average is heavy-tailed); the extra draws cost forward passes
        only.
    seed : int
        Seeds the split, the batches, the shuffles and the critic's initialisation: the result is
        deterministic for a given seed.
    progress : bool
        Show a tqdm progress bar.
    device : str or torch.device, optional
        Where to train (default: CPU).

    Returns
    -------
    EstimateResult

    Examples
    --------
    >>> from mdmest.tasks import gaussian_task_with_tc
    >>> task = gaussian_task_with_tc(1.0, [2, 2])
    >>> result = estimate(task.sample(2000), "dv", steps=50, progress=False)
    >>> isinstance(result.value, float), result.history.shape
    (True, (50,))
    """
    if decomposition not in DECOMPOSITION_CHOICES:
        raise ValueError(
            f"unknown decomposition {decomposition!r}; valid values are {DECOMPOSITION_CHOICES}"
        )
    if thorough:
        return _thorough(
            views,
            measure,
            decomposition,
            measure_kwargs,
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
    device = torch.device(device) if device is not None else torch.device("cpu")
    tensors = _as_tensors(views, device)
    n = tensors[0].shape[0]
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; valid values are {LR_SCHEDULES}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    n_test = int(round(n * test_fraction))
    if n_test < 2 or n - n_test < 2:
        raise ValueError(f"{n} rows leave too few for a {test_fraction:.0%} held-out split")
    if isinstance(negatives, str) and negatives != "auto":
        raise ValueError(f"negatives must be an int >= 1, 'auto' or None, got {negatives!r}")
    fixed_negatives = negatives not in (None, "auto")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        by_name = isinstance(measure, str)
        if by_name:
            dims = [t.shape[1] for t in tensors]
            if measure in KL_RECIPE_MEASURES:
                measure_kwargs.setdefault("sampler", "shifted")
                if "critic" not in measure_kwargs:
                    # A decomposed measure calls the factory once per term.
                    recipe = _recipe_critic if decomposition else _recipe_critic(sum(dims))
                    measure_kwargs["critic"] = recipe
            if fixed_negatives:
                measure_kwargs["negatives"] = negatives
            if decomposition is not None:
                measure = DecomposedTotalCorrelation(
                    dims, decomposition=decomposition, measure=measure, **measure_kwargs
                )
            else:
                measure = make_measure(measure, dims, **measure_kwargs)
        elif decomposition is not None:
            raise TypeError(
                "decomposition applies only when measure is given by name; build a "
                "DecomposedTotalCorrelation instead"
            )
        elif measure_kwargs:
            raise TypeError(
                f"options {sorted(measure_kwargs)} apply only when measure is given by name"
            )
        elif fixed_negatives:
            raise TypeError(
                f"negatives={negatives!r} applies only when measure is given by name; set it on "
                "the measure, or pass negatives='auto'"
            )
        if negatives is None and by_name and _is_kl(measure):
            negatives = "auto"  # the recipe's default for "dv", and "f" with KL
        auto_negatives = negatives == "auto"
        if auto_negatives and not _is_kl(measure):
            got = type(measure).__name__
            if isinstance(measure, FTotalCorrelation):
                got += f" with divergence {measure.divergence!r}"
            raise ValueError(
                "negatives='auto' needs a KL-type measure ('dv', or 'f' with the KL divergence), "
                f"whose product side averages e^T; got {got}"
            )
        measure = measure.to(device)
        return _train(
            measure,
            tensors,
            n_test,
            steps,
            batch_size,
            lr,
            lr_schedule,
            weight_decay,
            auto_negatives,
            eval_negatives,
            seed,
            progress,
        )


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


def _thorough(views, measure, decomposition, measure_kwargs: dict, **options) -> EstimateResult:
    """``estimate(..., thorough=True)``: the default run, one alternative, the larger value."""
    if not isinstance(measure, str):
        raise TypeError("thorough=True applies only when measure is given by name")
    if measure not in KL_RECIPE_MEASURES or measure_kwargs.get("divergence", "kl") != "kl":
        got = repr(measure)
        if measure == "f":
            got += f" with divergence {measure_kwargs['divergence']!r}"
        raise ValueError(f"thorough=True needs 'dv', or 'f' with the KL divergence; got {got}")
    if decomposition is not None or options["weight_decay"]:
        raise ValueError(
            "thorough=True chooses the decomposition and the weight decay itself; got "
            f"decomposition={decomposition!r}, weight_decay={options['weight_decay']}"
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


def _recipe_critic(in_features: int) -> MLPCritic:
    return MLPCritic(in_features, activation="gelu")


def _is_kl(measure: DependencyMeasure | DecomposedTotalCorrelation) -> bool:
    if isinstance(measure, DecomposedTotalCorrelation):
        return True
    if isinstance(measure, FTotalCorrelation):
        return measure.divergence == "kl"
    return isinstance(measure, TotalCorrelation)


def _train(
    measure,
    tensors,
    n_test,
    steps,
    batch_size,
    lr,
    lr_schedule,
    weight_decay,
    auto_negatives,
    eval_negatives,
    seed,
    progress,
) -> EstimateResult:
    device = tensors[0].device
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.randperm(tensors[0].shape[0], generator=generator, device=device)
    test = [t[order[:n_test]] for t in tensors]
    train = [t[order[n_test:]] for t in tensors]
    n_train = train[0].shape[0]
    batch_size = min(batch_size, n_train)
    measure.generator = generator
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
    # Each KL part adapts its own negatives (the terms of a decomposed measure, or the measure).
    parts = list(getattr(measure, "terms", [measure]))
    ess_sum = torch.zeros(len(parts), device=device)
    measure.train()
    batches_per_epoch = n_train // batch_size
    bar = tqdm(range(steps), desc=f"{type(measure).__name__}", disable=not progress, leave=False)
    for step in bar:
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
        if progress and (step + 1) % 100 == 0:
            bar.set_postfix(bound=f"{history[max(0, step - 99) : step + 1].mean().item():.3f}")
    if eval_negatives is None:
        eval_negatives = max(measure.negatives, math.ceil(EVAL_PRODUCT_ROWS / n_test))
    value = float(measure.estimate(*test, negatives=eval_negatives))
    measure.generator = None
    return EstimateResult(value=value, history=history.cpu().numpy(), measure=measure)
