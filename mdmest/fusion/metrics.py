"""The field's regression metrics for sentiment in [-3, 3] (MMSA's convention)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["METRIC_NAMES", "acc2_ratio", "regression_metrics"]

METRIC_NAMES = ("acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "mae", "corr")
"""Keys of the dict :func:`regression_metrics` returns, in order."""


def _as_vector(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    vector = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(vector).all():
        raise ValueError(
            f"{name} has non-finite values at indices {np.flatnonzero(~np.isfinite(vector))[:5]}"
        )
    return vector


def _class_accuracy(pred: np.ndarray, truth: np.ndarray, bound: float) -> float:
    rounded_pred = np.round(np.clip(pred, -bound, bound))
    rounded_truth = np.round(np.clip(truth, -bound, bound))
    return float(np.mean(rounded_pred == rounded_truth))


def _binary(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    return float(np.mean(pred == truth)), float(f1_score(truth, pred, average="weighted"))


def regression_metrics(pred: Any, truth: Any) -> dict[str, float]:
    r"""Acc-7, Acc-5, both Acc-2 variants with weighted F1, MAE and Pearson correlation.

    With predictions :math:`p` and labels :math:`y` (flattened):

    - ``acc7``: :math:`\mathrm{mean}[\mathrm{round}(\mathrm{clip}(p, -3, 3)) =
      \mathrm{round}(\mathrm{clip}(y, -3, 3))]`, numpy rounding (half to even: 0.5 and -0.5 round
      to 0, 1.5 and 2.5 to 2);
    - ``acc5``: the same with clipping to [-2, 2];
    - ``acc2_has0`` / ``f1_has0``: :math:`y \ge 0` against :math:`p \ge 0` on all samples, F1
      weighted by class support (``sklearn.metrics.f1_score(average="weighted")``);
    - ``acc2_non0`` / ``f1_non0``: samples with :math:`y = 0` dropped, then :math:`y > 0` against
      :math:`p > 0`; ``nan`` (with a warning) when every label is 0;
    - ``mae``: :math:`\mathrm{mean}\,|p - y|`;
    - ``corr``: Pearson correlation (``np.corrcoef``). When ``pred`` or ``truth`` is constant it is
      undefined; it is reported as 0.0 (no linear association can be shown), not ``nan``, so that
      model selection on it keeps working.

    Parameters
    ----------
    pred, truth : array-like or torch.Tensor
        Same number of finite values, at least two.

    Returns
    -------
    dict of str to float
        Keys :data:`METRIC_NAMES`, accuracies and F1 in [0, 1].

    Examples
    --------
    >>> m = regression_metrics([0.4, -1.6, 2.6, 0.2], [0.5, -2.0, 3.0, -0.2])
    >>> m["acc7"], m["acc2_has0"], round(m["mae"], 3)
    (1.0, 0.75, 0.325)
    """
    pred = _as_vector(pred, "pred")
    truth = _as_vector(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"pred has {pred.size} values, truth has {truth.size}")
    if pred.size < 2:
        raise ValueError(f"regression_metrics needs at least 2 samples, got {pred.size}")
    acc2_has0, f1_has0 = _binary(pred >= 0, truth >= 0)
    nonzero = truth != 0
    if nonzero.any():
        acc2_non0, f1_non0 = _binary(pred[nonzero] > 0, truth[nonzero] > 0)
    else:
        warnings.warn("every label is 0: acc2_non0 and f1_non0 are nan", stacklevel=2)
        acc2_non0 = f1_non0 = float("nan")
    constant = np.ptp(pred) == 0 or np.ptp(truth) == 0
    return {
        "acc7": _class_accuracy(pred, truth, 3.0),
        "acc5": _class_accuracy(pred, truth, 2.0),
        "acc2_has0": acc2_has0,
        "f1_has0": f1_has0,
        "acc2_non0": acc2_non0,
        "f1_non0": f1_non0,
        "mae": float(np.mean(np.abs(pred - truth))),
        "corr": 0.0 if constant else float(np.corrcoef(pred, truth)[0, 1]),
    }


def acc2_ratio(
    corrupted: Mapping[str, float] | float,
    full: Mapping[str, float] | float,
    key: str = "acc2_non0",
) -> float:
    """Acc-2 with a modality dropped over Acc-2 with all modalities (paper Fig. 2).

    Parameters
    ----------
    corrupted, full : dict from :func:`regression_metrics`, or float
        The metrics at inference without some modality, and with all of them.
    key : str
        Which Acc-2 to compare when dicts are given (``"acc2_non0"`` or ``"acc2_has0"``).

    Examples
    --------
    >>> acc2_ratio(0.5, 0.8)
    0.625
    """
    values = [v[key] if isinstance(v, Mapping) else v for v in (corrupted, full)]
    if values[1] <= 0:
        raise ValueError(f"full Acc-2 must be positive, got {values[1]}")
    return float(values[0] / values[1])
