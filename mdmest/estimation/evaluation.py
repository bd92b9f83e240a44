"""The value on the held-out rows, its standard error, and the warnings when it should not be
trusted."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from mdmest.estimation.result import EstimateResult, EstimateWarning

__all__ = ["EVAL_PRODUCT_ROWS", "STDERR_FOLDS", "FEW_TEST_ROWS", "CLOSED_FORM_CANDIDATES"]

#: With ``eval_negatives=None`` the held-out value averages over at least this many product rows.
EVAL_PRODUCT_ROWS = 2**18
#: The standard error of the value comes from up to this many disjoint folds of the held-out rows.
STDERR_FOLDS = 10
#: Fewer held-out rows than this make the value too noisy to trust without its standard error.
FEW_TEST_ROWS = 250
#: The candidates of ``refit=True`` that need no training.
CLOSED_FORM_CANDIDATES = ("size_bound", "gaussian_copula")


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
    # A bound that needs no training kept: the critic's shrink says nothing of it.
    closed_form = bool(result.candidates) and result.value in (
        result.candidates.get(name) for name in CLOSED_FORM_CANDIDATES
    )
    constant = all(
        part.shrink == 0.0 for part in getattr(result.measure, "terms", [result.measure])
    )
    if constant and not closed_form:
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
