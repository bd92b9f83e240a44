"""The value of a fixed critic on a set of rows, and its standard error over folds of them."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["EVAL_PRODUCT_ROWS", "STDERR_FOLDS"]

#: With ``eval_negatives=None`` a value averages over at least this many product rows (the
#: default of ``EstimateConfig.eval_product_rows``).
EVAL_PRODUCT_ROWS = 2**18
#: The standard error of a value comes from up to this many disjoint folds of its rows.
STDERR_FOLDS = 10


def _evaluate(
    measure,
    rows: list[torch.Tensor],
    eval_negatives: int | None,
    product_rows: int = EVAL_PRODUCT_ROWS,
    folds: int = STDERR_FOLDS,
) -> tuple[float, float]:
    """The bound on these rows and its standard error over disjoint folds of them; by default
    ``eval_negatives`` draws at least ``product_rows`` product rows."""
    n = rows[0].shape[0]
    if eval_negatives is None:
        eval_negatives = max(measure.negatives, math.ceil(product_rows / n))
    value = float(measure.estimate(*rows, negatives=eval_negatives))
    folds = min(folds, n // max(2, len(rows)))
    if folds < 2:
        return value, math.nan
    pieces = [torch.tensor_split(t, folds) for t in rows]
    fold_values = [
        float(measure.estimate(*fold, negatives=eval_negatives)) for fold in zip(*pieces)
    ]
    return value, float(np.std(fold_values, ddof=1) / math.sqrt(folds))
