"""Tests of mdmest.fusion.metrics against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mdmest.fusion.metrics import METRIC_NAMES, acc2_ratio, regression_metrics

# Labels with clipping (-3.4), half-way values (±0.5, 1.5, 2.5) and zeros.
TRUTH = [-3.4, -0.5, 0.0, 0.5, 1.5, 2.5, 0.0, -1.2]
PRED = [-2.6, 0.4, -0.3, 0.6, 2.4, 3.7, 0.2, -0.4]


def test_hand_computed_case() -> None:
    m = regression_metrics(PRED, TRUTH)
    assert tuple(m) == METRIC_NAMES
    # Acc-7: truth rounds to [-3, 0, 0, 0, 2, 2, 0, -1], pred to [-3, 0, 0, 1, 2, 3, 0, 0].
    assert m["acc7"] == 5 / 8
    # Acc-5: truth [-2, 0, 0, 0, 2, 2, 0, -1], pred [-2, 0, 0, 1, 2, 2, 0, 0].
    assert m["acc5"] == 6 / 8
    # has0: y >= 0 = [F F T T T T T F], p >= 0 = [F T F T T T T F].
    # F1 of True (support 5): P = R = 4/5; of False (support 3): P = R = 2/3.
    assert m["acc2_has0"] == 6 / 8
    assert m["f1_has0"] == pytest.approx((5 * 0.8 + 3 * 2 / 3) / 8)
    # non0 drops the two zero labels: y > 0 = [F F T T T F], p > 0 = [F T T T T F].
    # F1 of True: P = 3/4, R = 1 -> 6/7; of False: P = 1, R = 2/3 -> 0.8; supports 3 and 3.
    assert m["acc2_non0"] == pytest.approx(5 / 6)
    assert m["f1_non0"] == pytest.approx((6 / 7 + 0.8) / 2)
    assert m["mae"] == pytest.approx(5.2 / 8)
    p, y = np.array(PRED), np.array(TRUTH)
    pearson = ((p - p.mean()) * (y - y.mean())).sum() / math.sqrt(
        ((p - p.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()
    )
    assert m["corr"] == pytest.approx(pearson)


def test_rounding_is_half_to_even() -> None:
    # 0.5 and -0.5 round to 0, 1.5 and 2.5 to 2, -2.5 to -2: all match their truth.
    m = regression_metrics([0.5, -0.5, 1.5, 2.5, -2.5], [0.0, 0.0, 2.0, 2.0, -2.0])
    assert m["acc7"] == 1.0 and m["acc5"] == 1.0
    m = regression_metrics([0.5, 3.5, -9.0], [1.0, 3.0, -3.0])
    assert m["acc7"] == pytest.approx(2 / 3)  # 0.5 -> 0 misses 1; clipping saves 3.5 and -9


def test_zero_labels_count_as_positive_only_in_has0() -> None:
    m = regression_metrics([0.1, -0.1, 1.0, -1.0], [0.0, 0.0, 1.0, -1.0])
    assert m["acc2_has0"] == 0.75  # y = 0 is "positive", the prediction -0.1 is not
    assert m["acc2_non0"] == 1.0  # the zero labels are dropped
    assert m["f1_non0"] == 1.0


def test_perfect_predictions() -> None:
    truth = np.array([-2.2, -0.4, 0.6, 1.8, 3.0])
    m = regression_metrics(truth, truth)
    assert m["mae"] == 0.0 and m["corr"] == pytest.approx(1.0)
    assert all(m[key] == 1.0 for key in METRIC_NAMES if key not in ("mae", "corr"))


def test_constant_prediction_gives_zero_corr_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics([0.3, 0.3, 0.3], [-1.0, 0.5, 2.0])
        assert m["corr"] == 0.0
        assert regression_metrics([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])["corr"] == 0.0


def test_all_zero_labels_give_nan_non0_with_warning() -> None:
    with pytest.warns(UserWarning, match="every label is 0"):
        m = regression_metrics([0.2, -0.2], [0.0, 0.0])
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == 0.5


def test_accepts_tensors_and_column_vectors() -> None:
    from_tensors = regression_metrics(
        torch.tensor(PRED, requires_grad=True).reshape(-1, 1), torch.tensor(TRUTH)
    )
    expected = regression_metrics(np.float32(PRED), np.float32(TRUTH))
    assert from_tensors == pytest.approx(expected)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="pred has 3 values, truth has 2"):
        regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="truth has non-finite values"):
        regression_metrics([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="at least 2 samples"):
        regression_metrics([1.0], [1.0])


def test_acc2_ratio() -> None:
    full = regression_metrics(PRED, TRUTH)
    corrupted = {**full, "acc2_non0": full["acc2_non0"] / 2, "acc2_has0": 0.5}
    assert acc2_ratio(corrupted, full) == pytest.approx(0.5)
    assert acc2_ratio(corrupted, full, key="acc2_has0") == pytest.approx(0.5 / 0.75)
    assert acc2_ratio(0.5, 0.8) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="full Acc-2 must be positive"):
        acc2_ratio(0.5, 0.0)
