"""Every bad input of ``mdmest.estimate`` is named before any training, with what was expected and
what arrived; the inputs it accepts (integer views, a measure of another dtype) train."""

import numpy as np
import pytest
import torch

import mdmest
import mdmest.estimation
from mdmest import TotalCorrelation
from mdmest.estimation import EstimateWarning, minimum_rows


@pytest.fixture
def no_training(monkeypatch):
    """Any optimiser built fails the test: the error must come before training."""

    def train(*args, **kwargs):
        raise AssertionError("estimate started training before naming the bad input")

    monkeypatch.setattr(torch.optim, "Adam", train)
    monkeypatch.setattr(torch.optim, "AdamW", train)


def pair(rows=60, dims=(2, 2), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dims[0]))
    y = x[:, :1] + rng.normal(size=(rows, dims[1]))
    return [x, y]


def fit(views, measure="dv", **options):
    options = {"steps": 3, "batch_size": 16, "eval_negatives": 2, "progress": False, **options}
    with pytest.warns(EstimateWarning):  # few held-out rows
        return mdmest.estimate(views, measure, **options)


def test_unequal_row_counts_name_each_views_count(no_training):
    x, y = pair(3001)
    with pytest.raises(ValueError, match="same number of rows") as error:
        mdmest.estimate([x[:3000], y], steps=2, progress=False)
    assert "view 1: 3000" in str(error.value) and "view 2: 3001" in str(error.value)
    with pytest.raises(ValueError, match=r"view 1 \(a\): 3000, view 2 \(b\): 3001"):
        mdmest.estimate([x[:3000], y], steps=2, progress=False, names=["a", "b"])


@pytest.mark.parametrize("views", [[], [np.zeros((50, 2))]], ids=["none", "one"])
def test_fewer_than_two_views(no_training, views):
    with pytest.raises(ValueError, match=f"need at least 2 views, got {len(views)}"):
        mdmest.estimate(views, steps=2, progress=False)


def test_a_single_array_is_not_a_sequence_of_views(no_training):
    with pytest.raises(TypeError, match="sequence of K arrays .* not a single ndarray"):
        mdmest.estimate(np.zeros((50, 2)), steps=2, progress=False)


@pytest.mark.parametrize("shape", [(40, 2, 3), ()], ids=["3-d", "0-d"])
def test_views_must_be_1d_or_2d(no_training, shape):
    x, y = pair(40)
    bad = np.zeros(shape)
    with pytest.raises(ValueError, match=r"view 2 must be 1-d \(n,\) or 2-d") as error:
        mdmest.estimate([x, bad], steps=2, progress=False)
    assert f"got shape {shape}" in str(error.value)


def test_a_view_without_features(no_training):
    x, _ = pair(40)
    with pytest.raises(ValueError, match=r"view 2 has no features \(shape \(40, 0\)\)"):
        mdmest.estimate([x, np.zeros((40, 0))], steps=2, progress=False)


@pytest.mark.parametrize(
    "bad", [np.array(["a"] * 40), np.zeros(40, dtype=complex), np.array([None] * 40)]
)
def test_views_must_hold_real_numbers(no_training, bad):
    x, _ = pair(40)
    with pytest.raises(TypeError, match=f"view 2 must hold real numbers, got .*{bad.dtype}"):
        mdmest.estimate([x, bad], steps=2, progress=False)


def test_non_finite_rows_are_counted(no_training):
    x, y = pair(40)
    y[[3, 7], 0] = np.nan
    y[9, 1] = np.inf
    with pytest.raises(ValueError, match="view 2 contains NaN or Inf values in 3 rows"):
        mdmest.estimate([x, y], steps=2, progress=False)


@pytest.mark.parametrize("num_views", [2, 3])
def test_too_few_rows_state_the_minimum(no_training, num_views):
    need = minimum_rows(num_views)
    assert need == {2: 17, 3: 27}[num_views]  # validation rows: two halves of >= K rows
    views = pair(need - 1, (1, 1)) + ([np.zeros((need - 1, 1))] if num_views == 3 else [])
    with pytest.raises(ValueError, match=f"{need - 1} rows are too few") as error:
        mdmest.estimate(views, steps=2, progress=False)
    assert f"with {num_views} views" in str(error.value)
    assert f"needs at least {need} rows" in str(error.value)
    assert "batch" not in str(error.value)  # never a batch size the user did not set


def test_the_minimum_number_of_rows_is_enough():
    views = [*pair(minimum_rows(3), (1, 1)), np.zeros((minimum_rows(3), 1))]
    result = fit(views, steps=2)
    assert result.n_test >= 3 and result.n_train >= 3


def test_the_minimum_follows_test_fraction(no_training):
    need = minimum_rows(2, 0.5)
    with pytest.raises(ValueError, match=f"needs at least {need} rows"):
        mdmest.estimate(pair(need - 1), test_fraction=0.5, steps=2, progress=False)


def test_unknown_option_lists_the_valid_ones(no_training):
    with pytest.raises(TypeError, match="unknown option 'stepz'") as error:
        mdmest.estimate(pair(), stepz=10, progress=False)
    message = str(error.value)
    assert "estimate's options are" in message and "steps" in message.split("options are")[1]
    assert "'dv'" in message and "critic" in message  # the measure's options too


def test_unknown_options_are_all_named(no_training):
    with pytest.raises(TypeError, match="unknown options 'lipschitz', 'stepz'"):
        mdmest.estimate(pair(), "dv", stepz=10, lipschitz="spectral_norm", progress=False)


def test_unknown_measure_lists_the_valid_ones(no_training):
    with pytest.raises(ValueError, match="unknown measure 'kl'; valid values are 'dv', 'f'"):
        mdmest.estimate(pair(), "kl", steps=2, progress=False)


def test_options_need_a_measure_by_name(no_training):
    with pytest.raises(TypeError, match=r"options \['divergence'\] apply only when measure"):
        mdmest.estimate(pair(), TotalCorrelation([2, 2]), divergence="js", progress=False)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"test_fraction": 1.0}, r"test_fraction must lie in \(0, 1\), got 1.0"),
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"batch_size": 1}, "batch_size must be an int >= 2, got 1"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0, got -1.0"),
        ({"lr_schedule": "step"}, "unknown lr_schedule 'step'; valid values are"),
        ({"negatives": "many"}, "negatives must be an int >= 1, 'auto' or None, got 'many'"),
        ({"decomposition": "star"}, "unknown decomposition 'star'; valid values are"),
    ],
)
def test_bad_settings(no_training, options, message):
    with pytest.raises(ValueError, match=message):
        mdmest.estimate(pair(), **{"steps": 2, **options}, progress=False)


def test_copula_transform_is_rejected_for_wasserstein(no_training):
    with pytest.raises(ValueError, match="transform='copula' is valid for 'dv' and 'f' only"):
        mdmest.estimate(pair(), "wasserstein", transform="copula", steps=2, progress=False)


def test_unknown_transform_lists_the_valid_values(no_training):
    with pytest.raises(ValueError, match="unknown transform 'rank'") as error:
        mdmest.estimate(pair(), transform="rank", steps=2, progress=False)
    assert "'auto', 'per_view', 'whitened_copula', 'copula', 'radial', 'scale', None" in str(
        error.value
    )


def test_thorough_needs_a_kl_measure_by_name(no_training):
    with pytest.raises(ValueError, match="thorough=True needs 'dv'.*got 'wasserstein'"):
        mdmest.estimate(pair(), "wasserstein", thorough=True, steps=2, progress=False)
    with pytest.raises(ValueError, match="got 'f' with divergence 'js'"):
        mdmest.estimate(pair(), "f", divergence="js", thorough=True, steps=2, progress=False)
    with pytest.raises(TypeError, match="thorough=True applies only when measure is given by"):
        mdmest.estimate(pair(), TotalCorrelation([2, 2]), thorough=True, progress=False)


def test_a_measure_instance_must_be_a_measure(no_training):
    with pytest.raises(TypeError, match="got Linear"):
        mdmest.estimate(pair(), torch.nn.Linear(2, 2), steps=2, progress=False)


def test_integer_and_boolean_views_are_read_as_floats():
    x, y = pair(80)
    ints = np.round(x * 3).astype(np.int32)
    bools = torch.as_tensor(y > 0)
    result = fit([ints, bools], steps=2)
    assert np.isfinite(result.value)
    assert fit([ints, y.astype(np.uint8)], steps=2).n_test == 16


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_rows_are_cast_to_a_given_measures_dtype(dtype):
    views = [v.astype(np.float64) for v in pair(80)]
    measure = TotalCorrelation([2, 2]).to(dtype)
    result = fit(views, measure, steps=3)
    assert np.isfinite(result.value) and result.history.shape == (3,)
    assert all(p.dtype == dtype for p in result.measure.parameters())


def test_float32_views_train_a_float64_measure():
    views = [v.astype(np.float32) for v in pair(80)]
    result = fit(views, TotalCorrelation([2, 2]).double(), steps=2, transform=None)
    assert np.isfinite(result.value)


def test_a_given_measures_device_is_kept():
    measure = TotalCorrelation([2, 2])
    result = fit(pair(80), measure, steps=2, device="cpu")
    assert next(result.measure.parameters()).device.type == "cpu"


# -- a given measure's dims, eval_negatives and lr are checked before training too.
def test_a_given_measures_dims_must_match_the_views(no_training):
    x, y = pair(60)
    measure = TotalCorrelation([2, 2])
    # The message names the measure's widths, or the view that differs from them.
    named = r"view 2 has 1 features|\[2, 2\]|\(2, 2\)"
    with pytest.raises(ValueError, match=named):
        mdmest.estimate([x, y[:, :1]], measure, steps=2, progress=False)
    with pytest.raises(ValueError, match=r"expected 2 views|\[2, 2\]|\(2, 2\)"):
        mdmest.estimate([x, y, y], measure, steps=2, progress=False)


def test_eval_negatives_is_checked_before_training(no_training):
    with pytest.raises(ValueError, match="negatives must be an int >= 1, got 0"):
        mdmest.estimate(pair(), eval_negatives=0, steps=2, progress=False)


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan")])
def test_lr_is_checked_before_training(no_training, lr):
    with pytest.raises(ValueError, match="lr"):
        mdmest.estimate(pair(), lr=lr, steps=2, progress=False)


def test_the_default_learning_rate_is_the_recipes_for_kl_by_name_only():
    from mdmest.estimation.recipes import DEFAULT_LR, RECIPE_LR, _resolve_lr

    assert RECIPE_LR == 3e-3 and DEFAULT_LR == 1e-3
    assert _resolve_lr(None, "dv", {}) == RECIPE_LR
    assert _resolve_lr(None, "f", {}) == _resolve_lr(None, "f", {"divergence": "kl"}) == RECIPE_LR
    assert _resolve_lr(None, "f", {"divergence": "js"}) == DEFAULT_LR
    assert _resolve_lr(None, "wasserstein", {}) == DEFAULT_LR
    assert _resolve_lr(None, TotalCorrelation([1, 1]), {}) == DEFAULT_LR
    assert _resolve_lr(5e-4, "dv", {}) == 5e-4  # a caller's rate is kept
    with pytest.raises(mdmest.EstimateInputError, match="lr must be a finite number > 0, got 0"):
        mdmest.estimate([np.zeros((10, 1)), np.zeros((10, 1))], "dv", lr=0.0, progress=False)
