"""What :func:`mdmest.estimate` returns, and its warning for a value not to be trusted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mdmest._base import DependencyMeasure
from mdmest.decomposition import DecomposedTotalCorrelation
from mdmest.transforms import CommonScale, GaussianCopula

__all__ = ["EstimateResult", "EstimateWarning"]


class EstimateWarning(UserWarning):
    """An estimate that should not be trusted as it is: negative, overfit, or from too few rows."""


@dataclass(repr=False)
class EstimateResult:
    """What :func:`~mdmest.estimate` returns.

    Attributes
    ----------
    value : float
        The bound on the held-out rows with the kept critic, its product side averaged over
        ``eval_negatives`` draws (nats for "dv" and "f" with KL, the views' units for
        "wasserstein"); or, with ``refit=True`` where it is larger, a bound that needs no training
        on the same rows: from the views' sizes (:func:`~mdmest.estimation.size_bound`, candidate
        "size_bound") or of the Gaussian log-density ratio in the copula transform
        (:func:`~mdmest.estimation.gaussian_bound`, "gaussian_copula").
    stderr : float
        Standard error of ``value`` over held-out rows, critic fixed: the standard deviation of
        the value on ``m`` disjoint folds of the held-out rows (m ≤ 10), divided by √m (for
        "size_bound": a bootstrap over the held-out rows). It does not include the variation
        between training runs. NaN when the held-out rows are too few for two folds.
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
        The transform applied before the critic ("whitened_copula", "copula" or "scale"), or
        ``None``.
    value_scale : float
        What the measure's values on transformed rows (``result.transform_views``) are multiplied
        by to be in the views' units: the common scale of ``transform="scale"`` for a Wasserstein
        measure, otherwise 1. ``value``, ``stderr``, ``history`` and ``train_bound`` already are.
    candidates : dict of str to float, optional
        The held-out value of each setting trained, of which ``value`` is the larger: with
        ``thorough=True`` "default", and "weight_decay" or "tree_weight_decay"; after ``refit=True``
        trained a second time, "default" and one of "weight_decay", "tree_weight_decay",
        "view_sizes" (an overfit critic) or "extended" (one still learning), and
        "strong_weight_decay" where weight decay overfit too; with ``refit=True``, from 100
        held-out rows, "size_bound" (where the sizes are continuous) and "gaussian_copula" (in a
        copula transform, where the covariance is not singular). Otherwise ``None``.
    test_rows : numpy.ndarray, optional
        Positions, in the views, of the held-out rows.

    Examples
    --------
    >>> import numpy as np
    >>> result = EstimateResult(1.0, 0.05, np.zeros(3), None, n_train=1200, n_test=400)
    >>> result
    EstimateResult(value=1 ± 0.05, measure=None, n_test=400, n_train=1200, n_validation=0)
    >>> result.to_dict()["n_test"]
    400
    """

    value: float
    stderr: float
    history: np.ndarray
    measure: DependencyMeasure | DecomposedTotalCorrelation
    n_train: int = 0
    n_validation: int = 0
    n_test: int = 0
    train_bound: float = math.nan
    step_seconds: np.ndarray = field(default_factory=lambda: np.empty(0))
    transform: str | None = None
    candidates: dict[str, float] | None = None
    transforms: list[GaussianCopula | CommonScale] | None = None
    value_scale: float = 1.0
    test_rows: np.ndarray | None = None

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        spread = f" ± {self.stderr:.4g}" if math.isfinite(self.stderr) else ""
        return (
            f"{type(self).__name__}(value={self.value:.4g}{spread}, "
            f"measure={self.measure_name}, n_test={self.n_test}, n_train={self.n_train}, "
            f"n_validation={self.n_validation})"
        )

    @property
    def measure_name(self) -> str:
        """The class name of the measure, e.g. "TotalCorrelation"."""
        return type(self.measure).__name__ if self.measure is not None else "None"

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields as a JSON-serialisable dict (no tensors, no modules).

        Keys: value, stderr, measure (the class name), n_train, n_validation, n_test,
        train_bound, transform; candidates with ``thorough=True``; step_seconds (steps, total,
        median and max seconds) when steps were timed. A non-finite float (a NaN ``stderr``)
        is ``None``.
        """
        record: dict[str, Any] = {
            "value": _number(self.value),
            "stderr": _number(self.stderr),
            "measure": self.measure_name,
            "n_train": int(self.n_train),
            "n_validation": int(self.n_validation),
            "n_test": int(self.n_test),
            "train_bound": _number(self.train_bound),
            "transform": self.transform,
        }
        if self.candidates is not None:
            record["candidates"] = {name: _number(v) for name, v in self.candidates.items()}
        seconds = np.asarray(self.step_seconds, dtype=np.float64)
        if seconds.size:
            record["step_seconds"] = {
                "steps": int(seconds.size),
                "total": float(seconds.sum()),
                "median": float(np.median(seconds)),
                "max": float(seconds.max()),
            }
        return record

    def transform_views(self, views: Sequence) -> list[np.ndarray]:
        """Apply the transform fitted on the training rows to new rows of the same views."""
        arrays = [np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in views]
        if self.transforms is None:
            return arrays
        return [fitted.transform(a) for fitted, a in zip(self.transforms, arrays)]


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
