"""The input checks of :func:`mdmest.estimate`: every bad input is named before any training, with
what was expected and what came."""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from mdmest._base import DependencyMeasure
from mdmest._validation import check_choice, check_device, check_int, view_label
from mdmest.decomposition import DecomposedTotalCorrelation
from mdmest.measures import MEASURES

__all__ = ["EstimateInputError", "LR_SCHEDULES"]

LR_SCHEDULES = (None, "cosine")


class EstimateInputError(ValueError, TypeError):
    """An input that :func:`mdmest.estimate` rejects before any training starts: a view, an option
    or a setting. It is both a ``ValueError`` and a ``TypeError`` (what the checks raised before it
    had a name), and its message names what was expected and what arrived; an error raised once
    training has started is never one, so a caller can tell a bad input from a bug."""


@contextlib.contextmanager
def _rejected_as_input() -> Iterator[None]:
    """Raise every ``ValueError`` or ``TypeError`` of the block as an :class:`EstimateInputError`."""
    try:
        yield
    except EstimateInputError:
        raise
    except (ValueError, TypeError) as error:
        raise EstimateInputError(str(error)) from error


def _check_settings(
    steps, batch_size, lr, lr_schedule, weight_decay, negatives, eval_negatives, test_fraction
) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    check_int("steps", steps)
    check_int("batch_size", batch_size, least=2)
    if isinstance(negatives, str) and negatives != "auto":
        raise ValueError(f"negatives must be an int >= 1, 'auto' or None, got {negatives!r}")
    if eval_negatives is not None:
        check_int("eval_negatives", eval_negatives)


def _keywords(function) -> set[str]:
    return {
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and name != "self")
    }


def _check_options(
    name: str, decomposition: str | None, options: dict, estimator: Callable
) -> None:
    """Name an unknown measure or option before anything is built; the message lists the options
    of the measure and those of ``estimator`` (:func:`mdmest.estimate`)."""
    check_choice("measure", name, tuple(MEASURES))
    valid = _keywords(MEASURES[name].__init__) | _keywords(DependencyMeasure.__init__)
    if decomposition is not None:
        valid |= _keywords(DecomposedTotalCorrelation.__init__) - {"measure", "decomposition"}
    valid -= {"dims"}
    unknown = sorted(set(options) - valid)
    if unknown:
        own = sorted(_keywords(estimator) - {"views", "measure", "measure_kwargs"})
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
        return dtype, check_device(device or "cpu")
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
