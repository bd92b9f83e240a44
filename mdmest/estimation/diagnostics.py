"""The warnings of ``mdmest.estimate`` for a value that cannot be right as it stands."""

from __future__ import annotations

import math
import warnings

from mdmest.estimation.closed_forms import max_canonical_correlation
from mdmest.estimation.result import EstimateResult, EstimateWarning

__all__ = ["warn_if_untrustworthy"]

#: Views whose largest canonical correlation (in the transform the critics saw) is within this
#: of 1 are taken as (nearly) functions of each other.
FUNCTIONAL_GAP = 1e-6


def _warn(message: str) -> None:
    warnings.warn(message, EstimateWarning, stacklevel=4)


def warn_if_untrustworthy(result: EstimateResult, data) -> None:
    """Warn where ``result`` cannot be read as it stands; sets ``result.saturated`` and records
    every message in ``result.warnings``."""
    messages = _messages(result, data)
    result.warnings = list(messages)
    for message in messages:
        _warn(message)


def _messages(result: EstimateResult, data) -> list[str]:
    value, stderr = result.value, result.stderr
    spread = f" ± {stderr:.3f}" if math.isfinite(stderr) else ""
    out = []
    train_rows = data.rows("train")
    canonical = max_canonical_correlation(train_rows) if data.kl_by_name else math.nan
    cap = math.log(max(2, result.n_train))
    if canonical >= 1 - FUNCTIONAL_GAP or (
        data.kl_by_name and value > data.config.saturation_fraction * cap
    ):
        result.saturated = True
        why = (
            "two of the views are (nearly) functions of each other"
            if canonical >= 1 - FUNCTIONAL_GAP
            else f"the value is near log({result.n_train}) = {cap:.2f} nats"
        )
        out.append(
            f"{why}: the dependency is beyond what {result.n_train} training rows can show (a "
            f"bound from N rows is capped near log N), so the value {value:.3f} is a lower bound "
            "only and the true total correlation may be far larger (infinite for exact copies)."
        )
        return out
    if result.constant:
        out.append(
            f"no candidate beat a constant critic on the {result.n_validation} validation rows: "
            "the rows show no dependency that can be told from noise; the value 0 is the "
            f"constant critic's, and {stderr:.3f} is the spread the trained critic has on the "
            f"test rows (a dependency well below {2 * stderr:.3f} nats cannot be seen here)."
        )
        return out
    if value < 0 and not value + 2 * stderr >= 0:
        out.append(
            f"the test value {value:.3f}{spread} is below 0: the chosen candidate learned a "
            "dependency that does not hold on new rows (a constant critic reads 0). Use more "
            "rows or fewer steps."
        )
    gap = result.train_bound - value
    trained = result.candidates[result.chosen].trained if result.candidates else True
    if trained and gap > max(0.25 * abs(result.train_bound), 3 * (stderr if spread else 0), 0.05):
        out.append(
            f"the test value {value:.3f}{spread} is far below the final training bound "
            f"{result.train_bound:.3f}: the critic overfits the {result.n_train} training rows. "
            "Use more rows, fewer steps or weight_decay."
        )
    if result.n_test < data.config.few_test_rows:
        out.append(
            f"the value {value:.3f}{spread} comes from only {result.n_test} test rows (fewer "
            f"than {data.config.few_test_rows}); read it with its standard error."
        )
    return out
