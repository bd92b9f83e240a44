"""What :func:`mdmest.estimate` returns, and its warning for a value not to be trusted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mdmest._base import DependencyMeasure
from mdmest.decomposition import DecomposedTotalCorrelation
from mdmest.transforms import CommonScale, GaussianCopula, RadialGaussian

__all__ = ["EstimateResult", "EstimateWarning", "CandidateValue"]


class EstimateWarning(UserWarning):
    """An estimate that should not be trusted as it is: negative, overfit, or from too few rows."""


@dataclass(repr=False)
class EstimateResult:
    """What :func:`~mdmest.estimate` returns.

    Attributes
    ----------
    value : float
        The chosen candidate's bound on the test rows, rows that chose nothing (nats for "dv" and
        "f" with KL, the views' units for "wasserstein").
    stderr : float
        Standard error of ``value`` over the test rows, candidate fixed: the standard deviation
        of the value on ``m`` disjoint folds of them (m ≤ 10), divided by √m (for "size_bound": a
        bootstrap). It does not include the variation between training runs. Where the chosen
        critic was shrunk to a constant (``value`` 0), the spread of the unshrunk critic on the
        same rows: the dependency these rows could have shown. NaN with too few test rows.
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
        The transform fitted on the training rows that ``measure`` expects its rows in (a name of
        ``mdmest.transforms.TRANSFORMS``), or ``None``: the critics' one, or "whitened_copula"
        where the chosen candidate is the Gaussian-copula bound (fitted in a copula transform of
        its own whatever the critics saw); ``transforms`` holds the fitted maps.
    value_scale : float
        What the measure's values on transformed rows (``result.transform_views``) are multiplied
        by to be in the views' units: the common scale of ``transform="scale"`` for a Wasserstein
        measure, otherwise 1. ``value``, ``stderr``, ``history`` and ``train_bound`` already are.
    chosen : str
        The candidate whose test value is ``value``: the one with the highest validation value
        ("critic", "weight_decay", "gaussian_copula", ...).
    candidates : dict of str to CandidateValue
        Every candidate that ran: its validation and test values and standard errors, the
        seconds its run took, and the mixture a trained critic started from
        (``result.candidates[result.chosen].start``: 0 where the chosen value's critic started
        from nothing; ``start_covariance``: "full" or "block").
    saturated : bool
        The views are (nearly) functions of each other, or the value is near log n: the
        dependency is beyond what the rows can show and ``value`` is a lower bound only.
    constant : bool
        The chosen critic was shrunk to a constant on the validation rows (``value`` is 0).
    warnings : list of str
        The messages of the ``EstimateWarning``s this result raised.
    test_rows : numpy.ndarray, optional
        Positions, in the views, of the held-out rows.

    Examples
    --------
    >>> import numpy as np
    >>> result = EstimateResult(1.0, 0.05, np.zeros(3), None, n_train=1200, n_test=400)
    >>> result
    EstimateResult(value=1 ± 0.05, chosen='critic', measure=None, n_test=400, n_train=1200, n_validation=0)
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
    transforms: list[GaussianCopula | RadialGaussian | CommonScale] | None = None
    value_scale: float = 1.0
    chosen: str = "critic"
    candidates: dict[str, CandidateValue] = field(default_factory=dict)
    test_rows: np.ndarray | None = None
    saturated: bool = False
    constant: bool = False
    warnings: list[str] = field(default_factory=list)

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        spread = f" ± {self.stderr:.4g}" if math.isfinite(self.stderr) else ""
        return (
            f"{type(self).__name__}(value={self.value:.4g}{spread}, chosen={self.chosen!r}, "
            f"measure={self.measure_name}, n_test={self.n_test}, n_train={self.n_train}, "
            f"n_validation={self.n_validation})"
        )

    @property
    def measure_name(self) -> str:
        """The class name of the measure, e.g. "TotalCorrelation"."""
        return type(self.measure).__name__ if self.measure is not None else "None"

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields as a JSON-serialisable dict (no tensors, no modules).

        Keys: value, stderr, chosen, measure (the class name), n_train, n_validation, n_test,
        train_bound, transform, saturated, warnings, candidates (each one's validation and test
        values); step_seconds (steps, total, median and max seconds) when steps were timed. A
        non-finite float (a NaN ``stderr``) is ``None``.
        """
        record: dict[str, Any] = {
            "value": _number(self.value),
            "stderr": _number(self.stderr),
            "chosen": self.chosen,
            "measure": self.measure_name,
            "n_train": int(self.n_train),
            "n_validation": int(self.n_validation),
            "n_test": int(self.n_test),
            "train_bound": _number(self.train_bound),
            "transform": self.transform,
            "saturated": bool(self.saturated),
            "warnings": list(self.warnings),
            "candidates": {name: c.to_dict() for name, c in self.candidates.items()},
        }
        seconds = np.asarray(self.step_seconds, dtype=np.float64)
        if seconds.size:
            record["step_seconds"] = {
                "steps": int(seconds.size),
                "total": float(seconds.sum()),
                "median": float(np.median(seconds)),
                "max": float(seconds.max()),
            }
        return record

    def transform_views(self, views: Sequence) -> list[torch.Tensor]:
        """New rows of the same views, mapped by the transform fitted on the training rows, as
        tensors of the measure's dtype and device: what ``result.measure.estimate`` and
        ``scores`` take.

        >>> from mdmest.tasks import correlated_pair
        >>> import mdmest
        >>> views = correlated_pair(0.5, 2).sample(1000)
        >>> result = mdmest.estimate(views, "dv", steps=20, candidates=["critic"], progress=False)
        >>> float(result.measure.estimate(*result.transform_views(views))) > -1
        True
        """
        arrays = self._transform_arrays(views)
        parameter = next(
            (p for p in getattr(self.measure, "parameters", list)() if p.is_floating_point()), None
        )
        dtype = parameter.dtype if parameter is not None else torch.float32
        device = parameter.device if parameter is not None else torch.device("cpu")
        return [torch.as_tensor(a, dtype=dtype, device=device) for a in arrays]

    def _transform_arrays(self, views: Sequence) -> list[np.ndarray]:
        arrays = [
            np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
            for v in views
        ]
        arrays = [a.reshape(len(a), -1) for a in arrays]
        if self.measure is not None and hasattr(self.measure, "dims"):
            widths = tuple(a.shape[1] for a in arrays)
            if widths != tuple(self.measure.dims):
                raise ValueError(
                    f"expected {len(self.measure.dims)} views of widths {tuple(self.measure.dims)}, "
                    f"got {len(widths)} of widths {widths}"
                )
        if self.transforms is None:
            return arrays
        return [fitted.transform(a) for fitted, a in zip(self.transforms, arrays)]


@dataclass(frozen=True)
class CandidateValue:
    """One candidate's value and standard error on the validation rows (which chose among the
    candidates) and on the test rows (which chose nothing); ``trained`` for a trained critic;
    ``seconds``, the wall-clock time of its run (training and validation value; NaN where not
    timed), which equality ignores: the same values from two runs compare equal; ``start``, the
    number of components of the Gaussian mixture a trained critic started from (0: from
    nothing; :class:`~mdmest.critics.OffsetCritic`), and ``start_covariance`` that mixture's
    covariances: "full", or "block" (block-diagonal by view: the views independent given the
    component); "" where ``start`` is 0."""

    validation: float
    validation_stderr: float
    test: float
    test_stderr: float
    trained: bool = True
    seconds: float = field(default=math.nan, compare=False)  # a value's identity is not its time
    start: int = 0
    start_covariance: str = ""

    def to_dict(self) -> dict[str, float | None]:
        return {
            "validation": _number(self.validation),
            "validation_stderr": _number(self.validation_stderr),
            "test": _number(self.test),
            "test_stderr": _number(self.test_stderr),
            "seconds": _number(self.seconds),
            "start": int(self.start),
            "start_covariance": str(self.start_covariance),
        }


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
