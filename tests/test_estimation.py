"""Estimators trained with default settings against closed forms (the library's main promise)."""

import json
import warnings

import numpy as np
import pytest
import torch

import mdmest
from mdmest.critics import MLPCritic
from mdmest.reference import wasserstein_dependency
from mdmest.tasks import StudentTTask, TransformedTask, correlated_pair, gaussian_task_with_tc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def three_views():
    return gaussian_task_with_tc(1.0, (4, 4, 4)).sample(20000, seed=1)


@pytest.mark.parametrize("measure", ["dv", "f"])
def test_three_view_tc_of_one_nat(three_views, measure):
    result = mdmest.estimate(three_views, measure, progress=False)
    assert result.value == pytest.approx(1.0, abs=0.1)
    assert result.history.shape == (2000,)


@pytest.mark.parametrize("measure", ["dv", "f"])
def test_independent_views_give_zero(measure):
    views = gaussian_task_with_tc(0.0, (4, 4)).sample(20000, seed=2)
    assert mdmest.estimate(views, measure, progress=False).value == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("measure", ["dv", "f"])
@pytest.mark.parametrize("rho", [0.4, 0.6, 0.75])
def test_correlated_pairs_within_ten_percent(measure, rho):
    task = correlated_pair(rho, 5)  # true MI 0.44, 1.12, 2.09 nats
    result = mdmest.estimate(task.sample(20000, seed=3), measure, progress=False)
    assert result.value == pytest.approx(task.mutual_information, rel=0.10)


@pytest.fixture(scope="module")
def pair_w1():
    x, y = correlated_pair(0.8, 1).sample(5000, seed=4)
    return (x, y), wasserstein_dependency(x[:4000], y[:4000])


def test_wasserstein_gradient_penalty_against_exact_ot(pair_w1):
    views, reference = pair_w1
    result = mdmest.estimate(views, "wasserstein", progress=False)
    assert result.value == pytest.approx(reference, rel=0.10)


def test_wasserstein_spectral_norm_against_exact_ot(pair_w1):
    views, reference = pair_w1
    result = mdmest.estimate(views, "wasserstein", lipschitz="spectral_norm", progress=False)
    assert result.value == pytest.approx(reference, rel=0.25)


def test_reordering_views_with_dims_leaves_the_estimate_unchanged(three_views):
    a, b, c = three_views
    forward = mdmest.estimate([a, b[:, :2], c], "dv", steps=1000, progress=False).value
    backward = mdmest.estimate([c, b[:, :2], a], "dv", steps=1000, progress=False).value
    assert forward == pytest.approx(backward, abs=0.06)


def test_seed_makes_estimate_deterministic(three_views):
    views = [v[:3000] for v in three_views]
    runs = [mdmest.estimate(views, "dv", steps=100, seed=5, progress=False) for _ in range(2)]
    assert runs[0].value == runs[1].value
    np.testing.assert_array_equal(runs[0].history, runs[1].history)
    other = mdmest.estimate(views, "dv", steps=100, seed=6, progress=False)
    assert other.value != runs[0].value


def test_torch_input_and_a_measure_instance():
    views = [torch.as_tensor(v) for v in gaussian_task_with_tc(0.5, (2, 2)).sample(2000)]
    measure = mdmest.FTotalCorrelation((2, 2), divergence="js")
    result = mdmest.estimate(views, measure, steps=20, progress=False)
    assert result.measure is measure
    with pytest.raises(TypeError, match=r"options \['divergence'\] apply only"):
        mdmest.estimate(views, measure, steps=20, divergence="kl", progress=False)


def test_result_repr_is_one_short_line_and_to_dict_is_json():
    views = gaussian_task_with_tc(0.5, (2, 2)).sample(2000, seed=0)
    result = mdmest.estimate(views, "dv", steps=20, progress=False)
    text = repr(result)
    assert "\n" not in text and len(text) < 150, text
    assert text.startswith(f"EstimateResult(value={result.value:.4g} ± {result.stderr:.4g}, ")
    assert f"measure={result.measure_name}, n_test=400, n_train=1200, n_validation=400)" in text
    assert f"chosen={result.chosen!r}" in text
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["value"] == result.value and record["stderr"] == result.stderr
    assert record["measure"] == result.measure_name and record["transform"] == result.transform
    assert (record["n_train"], record["n_validation"], record["n_test"]) == (1200, 400, 400)
    assert record["train_bound"] == result.train_bound
    assert record["step_seconds"]["steps"] == 20
    # The bounds that need no training are candidates on every run; the value is the chosen
    # one's test value, and the chosen one has the highest validation value.
    assert set(record["candidates"]) == {"critic", "size_bound", "gaussian_copula"}
    assert record["chosen"] == result.chosen
    assert record["candidates"][result.chosen]["test"] == result.value
    validation = {k: v["validation"] for k, v in record["candidates"].items()}
    assert validation[result.chosen] == max(validation.values())
    # Each candidate's run is timed; the trained critic takes longer than a closed form.
    seconds = {k: v["seconds"] for k, v in record["candidates"].items()}
    assert all(s > 0 for s in seconds.values()), seconds
    assert seconds["critic"] > seconds["size_bound"], seconds
    # Without a standard error: no "±", and None (JSON null) in the dict.
    bare = mdmest.EstimateResult(0.5, float("nan"), result.history, result.measure, n_test=3)
    assert "±" not in repr(bare) and bare.to_dict()["stderr"] is None
    bare.candidates = {"critic": mdmest.estimation.CandidateValue(0.5, 0.1, 0.25, float("nan"))}
    assert json.loads(json.dumps(bare.to_dict()))["candidates"]["critic"] == {
        "validation": 0.5,
        "validation_stderr": 0.1,
        "test": 0.25,
        "test_stderr": None,
        "seconds": None,
        "start": 0,
        "start_covariance": "",
    }


def test_estimate_rejects_bad_arguments():
    views = gaussian_task_with_tc(0.5, (2, 2)).sample(100)
    with pytest.raises(ValueError, match="test_fraction must lie in"):
        mdmest.estimate(views, test_fraction=1.0, progress=False)
    with pytest.raises(TypeError, match="sequence of K arrays"):
        mdmest.estimate(np.zeros((10, 2)), progress=False)
    with pytest.raises(TypeError, match="view 1 must hold real numbers, got .* dtype object"):
        mdmest.estimate([np.full((100, 2), None), views[1]], progress=False)
    with pytest.raises(
        ValueError, match=r"view 2 must be 1-d \(n,\) or 2-d .* shape \(100, 2, 1\)"
    ):
        mdmest.estimate([views[0], views[1][..., None]], progress=False)
    # Integer views are read as floats (the rows of an integer-coded view).
    ints = [np.round(3 * v).astype(np.int64) for v in views]
    with pytest.warns(mdmest.estimation.EstimateWarning, match="test rows"):
        result = mdmest.estimate(ints, steps=2, eval_negatives=2, progress=False)
    assert np.isfinite(result.value)
    with pytest.raises(ValueError, match="negatives must be an int >= 1, got 0"):
        mdmest.estimate(views, steps=2, eval_negatives=0, progress=False)


def test_held_out_value_averages_many_product_draws(three_views):
    views = [v[:5000] for v in three_views]
    result = mdmest.estimate(views, "dv", steps=300, seed=0, progress=False)
    test = [torch.as_tensor(v, dtype=torch.float32) for v in views]
    # Re-draw the product side on the held-out rows: one draw scatters, 2^18 rows barely move.
    order = torch.randperm(5000, generator=torch.Generator().manual_seed(0))
    held_out = [t[order[:1000]] for t in test]
    singles = torch.stack([result.measure.estimate(*held_out) for _ in range(10)])
    many = torch.stack([result.measure.estimate(*held_out, negatives=262) for _ in range(3)])
    assert many.std() < singles.std() / 3
    assert result.value == pytest.approx(many.mean().item(), abs=3 * many.std().item() + 0.01)


def test_auto_negatives_grow_with_strong_dependency_only():
    strong = correlated_pair(0.99, 2).sample(4000, seed=7)  # 3.9 nats on 2 features
    # 800 steps: the critic also reads the views' sizes, which on two features at 3.9 nats it
    # latches onto first (2.4 nats and one negative at 400 steps, 3.3 and 16 at 800).
    critic = dict(steps=800, batch_size=64, candidates=["critic"], progress=False)
    grown = mdmest.estimate(strong, "dv", **critic)
    assert grown.measure.negatives > 1
    independent = gaussian_task_with_tc(0.0, (2, 2)).sample(4000, seed=7)
    kept = mdmest.estimate(independent, "dv", **critic)
    assert kept.measure.negatives == 1
    fixed = mdmest.estimate(strong, "dv", negatives=1, **critic)
    assert fixed.measure.negatives == 1


def test_negatives_option_is_checked():
    views = gaussian_task_with_tc(0.5, (2, 2)).sample(500)
    assert mdmest.estimate(views, "dv", steps=2, negatives=3, progress=False).measure.negatives == 3
    with pytest.raises(
        ValueError, match="negatives must be an int >= 1, 'auto' or None, got 'many'"
    ):
        mdmest.estimate(views, steps=2, negatives="many", progress=False)
    with pytest.raises(ValueError, match="negatives='auto' needs a KL-type measure"):
        mdmest.estimate(views, "wasserstein", steps=2, negatives="auto", progress=False)
    chi2 = mdmest.FTotalCorrelation((2, 2), divergence="chi2")
    with pytest.raises(ValueError, match="got FTotalCorrelation with divergence 'chi2'"):
        mdmest.estimate(views, chi2, steps=2, negatives="auto", progress=False)
    with pytest.raises(TypeError, match="negatives=2 applies only when measure is given by name"):
        mdmest.estimate(
            views, mdmest.TotalCorrelation((2, 2)), steps=2, negatives=2, progress=False
        )
    # By name, a non-KL f-divergence keeps its one negative instead of "auto".
    js = mdmest.estimate(views, "f", steps=2, divergence="js", progress=False)
    assert js.measure.negatives == 1


def test_heavy_tailed_pair_within_a_quarter_of_the_truth():
    # Cauchy-tailed pair (Student-t, 1 degree of freedom): the untransformed DV value of such data
    # read hundreds of nats below zero at 10,000 rows; the copula transform makes it ordinary.
    task = StudentTTask((2, 2), dof=1)
    result = mdmest.estimate(task.sample(3000, seed=0), "dv", steps=500, progress=False)
    if result.chosen != "gaussian_copula":  # that bound is fitted in a copula of its own
        # Each view an elliptical one: the per-view choice is the radial map.
        assert result.transform == "per_view"
        assert all(isinstance(f, mdmest.transforms.RadialGaussian) for f in result.transforms)
    assert result.value == pytest.approx(task.mutual_information, rel=0.25)


@pytest.mark.parametrize("caller_flushes", [False, True])
def test_flush_denormal_is_restored_for_the_caller(caller_flushes):
    from mdmest.estimation.training import _flush_denormal_on

    if not torch.set_flush_denormal(caller_flushes):
        pytest.skip("this CPU cannot flush subnormal numbers")
    try:
        views = gaussian_task_with_tc(0.5, (2, 2)).sample(500)
        mdmest.estimate(views, "dv", steps=3, progress=False)
        assert _flush_denormal_on() is caller_flushes
    finally:
        torch.set_flush_denormal(False)


def test_few_rows_read_the_constant_critics_zero_with_a_warning():
    views = gaussian_task_with_tc(1.0, (4, 4, 4)).sample(50, seed=1)
    with pytest.warns(mdmest.EstimateWarning, match="no candidate beat a constant critic"):
        result = mdmest.estimate(views, "dv", seed=1, steps=300, progress=False)
    assert result.value == 0.0 and (result.n_train, result.n_validation, result.n_test) == (
        30,
        10,
        10,
    )
    assert result.constant and result.chosen == "critic"
    # The standard error of a 0 is what the rows could have shown, not 0.
    assert result.stderr > 0


def test_small_samples_never_read_far_below_zero():
    # Before the validation rows, 3 views at 1 nat read -1.60 at 50 rows and -0.29 at 200.
    task = gaussian_task_with_tc(1.0, (4, 4, 4))
    for rows, seed in [(100, 0), (200, 1)]:
        with pytest.warns(mdmest.EstimateWarning):
            result = mdmest.estimate(task.sample(rows, seed=seed), "dv", seed=seed, progress=False)
        assert result.n_validation > 0 and result.value > -0.1
        assert result.stderr > 0


def _test_values(result) -> dict:
    """Each candidate's test value."""
    return {name: c.test for name, c in result.candidates.items()}


def test_refit_trains_again_with_weight_decay_when_the_critic_overfits():
    # Weak dependency among wide views: the critic learns noise of its training rows.
    views = gaussian_task_with_tc(0.5, (20, 20, 20)).sample(5000, seed=0)
    budget = dict(steps=300, progress=False)
    first = mdmest.estimate(views, "dv", candidates=["critic"], **budget)
    critic = first.candidates["critic"]
    assert set(first.candidates) == {"critic"} and first.n_validation == 500
    assert mdmest.estimation.overfits(
        first.train_bound, critic.validation, critic.validation_stderr
    )
    result = mdmest.estimate(views, "dv", **budget)
    # Weight decay overfits too, and the sizes of Gaussian views show no dependency: a third run
    # with a stronger weight decay (not the view-size critic); the size bound reads about 0.
    assert set(result.candidates) == {
        "critic",
        "weight_decay",
        "strong_weight_decay",
        "size_bound",
        "gaussian_copula",
    }
    assert result.candidates["critic"] == critic  # the same first run
    assert abs(result.candidates["size_bound"].test) < 0.02
    assert result.value == result.candidates[result.chosen].test


def test_size_dependence_sees_a_shared_scale_and_not_gaussian_dependency():
    size_dependence = mdmest.estimation.size_dependence
    t_pair = StudentTTask((10, 10), dof=3)  # one random scale shared by both views
    assert 0.6 * t_pair.total_correlation < size_dependence(t_pair.sample(5000, seed=0)) < 0.6
    gaussian = gaussian_task_with_tc(1.0, (10, 10))
    assert abs(size_dependence(gaussian.sample(5000, seed=0))) < 0.02
    x = np.random.default_rng(0).normal(size=(500, 3))
    assert size_dependence([x, 2 * x]) > 10  # the same sizes
    assert size_dependence([x, np.ones((500, 2))]) == 0.0  # one size: nothing, and no warning


def test_the_critic_reads_the_views_sizes_where_heavy_tails_share_one_scale():
    # Wide Student-t views: the dependency is the shared scale, which a plain critic on 20
    # features does not find before it overfits (0.056 nats against 0.519); the recipe's critic
    # reads each view's mean square as well.
    task = StudentTTask((10, 10), dof=3)
    views = task.sample(5000, seed=0)
    result = mdmest.estimate(views, "dv", steps=300, progress=False)
    values = _test_values(result)
    assert "view_sizes" not in values
    assert 0.5 * task.total_correlation < values["critic"] < task.total_correlation + 0.05
    assert 0.5 * task.total_correlation < result.value < task.total_correlation + 0.05
    if result.candidates[result.chosen].trained:
        assert result.measure.critic.view_dims == [10, 10]
    plain = MLPCritic(20, hidden=(256, 256), activation="gelu")
    without = mdmest.estimate(views, "dv", steps=300, progress=False, critic=plain)
    assert without.candidates["critic"].test < 0.5 * values["critic"]
    # The size bound is that of the test rows, in the transform the critics saw.
    test_rows = [t.numpy().astype(np.float64) for t in result.transform_views(views)]
    held_out = [v[result.test_rows] for v in test_rows]
    assert values["size_bound"] == pytest.approx(
        mdmest.estimation.size_bound(held_out, seed=0)[0], abs=1e-4
    )


def test_size_bound_is_a_lower_bound_exact_for_a_shared_scale_and_zero_when_independent():
    size_bound = mdmest.estimation.size_bound
    # Spherical Student-t views depend only through their shared scale: the bound is close.
    task = StudentTTask((5, 5), dof=3)
    value, stderr = size_bound(task.sample(4000, seed=0))
    assert 0 < stderr < 0.03
    assert 0.8 * task.total_correlation < value < task.total_correlation + 3 * stderr
    # Independent views: about 0 after the bias correction, over many draws too.
    rng = np.random.default_rng(0)
    draws = [size_bound([rng.standard_t(2, (500, 3)) for _ in range(3)]) for _ in range(40)]
    values = np.array([v for v, _ in draws])
    assert abs(values.mean()) < 0.003 and np.all(values < 4 * np.array([s for _, s in draws]))
    # A Gaussian pair with 1 nat of dependency: the sizes show a small part of it.
    gaussian = gaussian_task_with_tc(1.0, (5, 5)).sample(4000, seed=0)
    assert 0 <= size_bound(gaussian)[0] < 0.3
    # No bound from tied sizes, one view of one size, or identical sizes.
    x = rng.normal(size=(1000, 3))
    assert np.isnan(size_bound([x, np.sign(x)])[0])
    assert np.isnan(size_bound([x, np.ones((1000, 2))])[0])
    assert np.isnan(size_bound([x, 2 * x])[0])


def test_few_rows_of_wide_heavy_tails_keep_the_size_bound_without_the_constant_warning():
    # 2000 rows of Student-t views, 10 features a side: the critic (which reads the views' sizes
    # too) reads 0.33 on the test rows, the views' sizes alone 0.59 of the 0.71 nats.
    task = StudentTTask((10, 10), dof=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mdmest.estimate(task.sample(2000, seed=100), "dv", steps=200, progress=False)
    critic = result.candidates["critic"]
    assert (
        result.n_validation > 0 and critic.validation < result.candidates["size_bound"].validation
    )
    assert result.chosen == "size_bound"
    assert result.value == result.candidates["size_bound"].test > 0.7 * task.total_correlation
    assert result.stderr > 0
    assert not any("constant" in str(w.message) for w in caught)


def test_refit_adds_nothing_where_the_critic_does_not_overfit():
    views = gaussian_task_with_tc(1.0, (2, 2)).sample(5000, seed=0)
    budget = dict(steps=300, progress=False)
    result = mdmest.estimate(views, "dv", **budget)
    first = mdmest.estimate(views, "dv", refit=False, **budget)
    critic = first.candidates["critic"]
    assert not mdmest.estimation.overfits(
        first.train_bound, critic.validation, critic.validation_stderr
    )
    assert result.candidates["critic"] == critic
    # No weight-decay refit; the deeper critic (the first one fits without overfitting), and the
    # bounds that need no training.
    assert set(result.candidates) == {"critic", "deeper", "size_bound", "gaussian_copula"}


def test_deeper_candidate_trains_the_residual_critic_where_the_plain_one_fits():

    views = gaussian_task_with_tc(1.0, (2, 2)).sample(5000, seed=0)
    budget = dict(steps=300, progress=False)
    result = mdmest.estimate(views, "dv", candidates=["critic", "deeper"], **budget)
    first = mdmest.estimate(views, "dv", refit=False, **budget)
    assert set(result.candidates) == {"critic", "deeper"}
    assert result.candidates["critic"] == first.candidates["critic"]  # the first run is unchanged
    validation = {k: v.validation for k, v in result.candidates.items()}
    assert result.chosen == max(validation, key=validation.get)
    assert result.value == result.candidates[result.chosen].test
    deeper = result.candidates["deeper"]
    assert deeper.trained and abs(deeper.test - 1.0) < 0.2
    if result.chosen == "deeper":
        critic = result.measure.critic
        assert isinstance(critic, MLPCritic)
        assert any(type(m).__name__ == "_ResidualBlock" for m in critic.modules())
    # Not with the caller's own critic, a decomposition, or too few rows to refit.
    own = mdmest.estimate(
        views, "dv", candidates=["critic", "deeper"], critic=MLPCritic(4, hidden=(32,)), **budget
    )
    assert set(own.candidates) == {"critic"}
    few = mdmest.estimate([v[:2000] for v in views], "dv", candidates=["deeper"], **budget)
    assert set(few.candidates) == {"critic"}
    # Nor where the first critic learned nothing (independent views): nothing to fit better.
    rng = np.random.default_rng(0)
    independent = [rng.normal(size=(5000, 2)) for _ in range(2)]
    flat = mdmest.estimate(independent, "dv", candidates=["deeper"], **budget)
    assert set(flat.candidates) == {"critic"}


def test_overfits_needs_a_gap_beyond_the_bound_fraction_the_noise_and_a_floor():
    overfits = mdmest.estimation.overfits
    assert overfits(1.0, 0.9, 0.01)  # 0.1 nats below: more than 5% of the bound
    assert not overfits(1.0, 0.96, 0.01)  # within 5%
    assert not overfits(1.0, 0.9, 0.05)  # within 3 standard errors
    assert overfits(0.1, 0.07, 0.001) and not overfits(0.1, 0.09, 0.001)  # the 0.02-nat floor
    assert overfits(1.0, 0.5, float("nan"))  # no standard error: the other two rules


def test_extended_candidate_trains_the_critic_as_long_again():
    # The "extended" candidate's run, under a condition that always holds (its own condition,
    # still_rising, is tested below): the critic trained on from where it stopped.
    from mdmest.estimation import Candidate
    from mdmest.estimation.candidates import EXTENDED

    task = TransformedTask(gaussian_task_with_tc(1.0, (2, 2)), "spiral")
    views = task.sample(5000, seed=0)
    first = mdmest.estimate(views, "dv", steps=300, refit=False, progress=False)
    always = Candidate("extended", lambda data, done: True, EXTENDED.run)
    result = mdmest.estimate(views, "dv", steps=300, candidates=["critic", always], progress=False)
    assert result.candidates["critic"] == first.candidates["critic"]
    assert set(result.candidates) == {"critic", "extended"}
    validation = {k: v.validation for k, v in result.candidates.items()}
    assert result.chosen == max(validation, key=validation.get)
    if result.chosen == "extended":
        assert result.history.shape == result.step_seconds.shape == (600,)
        np.testing.assert_array_equal(result.history[:300], first.history)


def test_still_rising_reads_the_last_two_quarters_of_the_bound():
    still_rising = mdmest.estimation.still_rising
    flat = np.r_[np.linspace(0, 1, 100), np.ones(100)]
    assert not still_rising(flat, 1.0, 0.01)
    climbing = np.linspace(0, 1, 200)  # the last quarter 0.25 above the one before
    assert still_rising(climbing, 0.9, 0.01)
    assert not still_rising(climbing, 0.5, 0.01)  # overfit: not trained further
    assert not still_rising(climbing[:80], 0.3, 0.01)  # too few steps to tell


def test_gaussian_critic_reads_the_gaussian_total_correlation_on_rows_it_was_not_fitted_on():
    from mdmest.critics import GaussianCritic
    from mdmest.reference import gaussian_total_correlation

    task = gaussian_task_with_tc(1.0, (3, 2, 4))
    rows = np.concatenate(task.sample(20000, seed=0), axis=1)
    critic = GaussianCritic.fit(rows[:16000], [3, 2, 4])
    # The critic is the log-density ratio: its mean on joint rows is the fitted Gaussian TC.
    fitted = gaussian_total_correlation(np.cov(rows[:16000], rowvar=False), [3, 2, 4])
    mean_score = float(critic(torch.as_tensor(rows[:16000], dtype=torch.float64)).mean())
    assert mean_score == pytest.approx(fitted, abs=1e-6)
    measure = mdmest.TotalCorrelation([3, 2, 4], critic=critic, sampler="shifted")
    held_out = [torch.as_tensor(v[16000:], dtype=torch.float32) for v in task.sample(20000, 0)]
    assert float(measure.estimate(*held_out, negatives=64, generator=0)) == pytest.approx(
        task.total_correlation, abs=0.06
    )
    # Fitted on independent rows: scores about 0 on average.
    independent = np.random.default_rng(0).normal(size=(8000, 4))
    flat = GaussianCritic.fit(independent, [2, 2])(torch.as_tensor(independent))
    assert abs(float(flat.mean())) < 0.002  # the fitted TC: about p / (2n)
    with pytest.raises(ValueError, match="singular"):
        GaussianCritic.fit(np.c_[independent, independent[:, :1]], [2, 3])
    with pytest.raises(ValueError, match=r"rows of 5 features.*got shape \(8000, 4\)"):
        GaussianCritic.fit(independent, [2, 3])


def test_shrunk_gaussian_critic_scales_and_thresholds_the_canonical_correlations():
    from mdmest.critics import GaussianCritic
    from mdmest.reference import gaussian_total_correlation

    rng = np.random.default_rng(0)
    rows = np.concatenate(gaussian_task_with_tc(1.0, (3, 3)).sample(4000, seed=0), axis=1)
    rows = rows * rng.uniform(0.5, 3.0, 6)  # canonical correlations do not depend on scales
    cov = np.cov(rows, rowvar=False)
    w1, w2 = (np.linalg.inv(np.linalg.cholesky(cov[p, p])) for p in (slice(0, 3), slice(3, 6)))
    canonical = np.linalg.svd(w1 @ cov[:3, 3:] @ w2.T, compute_uv=False)
    # The critic's mean score on its rows is the TC of the covariance it fitted: that of the
    # canonical correlations scale * max(s - threshold, 0).
    for threshold, scale in [(0.0, 1.0), (0.0, 0.7), (0.1, 1.0), (1.0, 1.0)]:
        critic = GaussianCritic.fit(rows, [3, 3], threshold=threshold, scale=scale)
        shrunk = scale * np.maximum(canonical - threshold, 0.0)
        expected = -0.5 * np.log1p(-(shrunk**2)).sum()
        mean = float(critic(torch.as_tensor(rows)).mean())
        if threshold == 0.0 and scale == 1.0:
            assert mean == pytest.approx(gaussian_total_correlation(cov, [3, 3]), abs=1e-6)
        if threshold == 1.0:
            assert expected == 0.0
        # Quadratic terms of the shrunk fit no longer cancel on the rows: compare with the
        # held-out mean of the exact Gaussian of those canonical correlations up to that term.
        assert (critic.threshold, critic.scale) == (threshold, scale)
        assert float(critic.constant) == pytest.approx(0.5 * -np.log1p(-(shrunk**2)).sum())


def test_cross_validated_gaussian_critic_generalises_better_and_keeps_strong_dependency():
    from mdmest.critics import GaussianCritic

    def held_out_mean(critic, rows):
        return float(critic(torch.as_tensor(rows)).mean())

    # Rank-2 dependency between 20 + 20 features: thresholding the noise's canonical
    # correlations helps on rows the fit never saw.
    task = mdmest.tasks.low_rank_gaussian_task(0.5, (20, 20))
    for seed in range(3):
        rows = np.concatenate(task.sample(6000, seed=seed), axis=1)
        plain = GaussianCritic.fit(rows[:4000], task.dims)
        chosen = GaussianCritic.fit_cv(rows[:4000], task.dims)
        assert chosen.threshold > 0
        assert held_out_mean(chosen, rows[4000:]) > held_out_mean(plain, rows[4000:]) + 0.01
    # Independent wide views: shrunk to about a constant critic (the plain fit reads below 0).
    independent = np.random.default_rng(0).normal(size=(6000, 40))
    flat = GaussianCritic.fit_cv(independent[:4000], [20, 20])
    assert flat.threshold >= 0.08 and abs(held_out_mean(flat, independent[4000:])) < 0.002
    assert (
        held_out_mean(GaussianCritic.fit(independent[:4000], [20, 20]), independent[4000:]) < -0.03
    )
    # Too few rows for the folds: the plain fit; a bad shrinkage is named.
    assert GaussianCritic.fit_cv(independent[:9, :4], [2, 2]).threshold == 0.0
    with pytest.raises(ValueError, match=r"scale in \[0, 1\], got threshold=0.0, scale=1.5"):
        GaussianCritic.fit(independent[:100, :4], [2, 2], scale=1.5)
    # Strong dependency: no shrinkage, the plain fit.
    strong = np.concatenate(gaussian_task_with_tc(8.0, (5, 5)).sample(4000, seed=0), axis=1)
    assert (
        GaussianCritic.fit_cv(strong, [5, 5]).threshold,
        GaussianCritic.fit_cv(strong, [5, 5]).scale,
    ) == (0.0, 1.0)


def test_gaussian_bound_is_a_lower_bound_near_zero_when_independent_and_nan_on_few_rows():
    gaussian_bound = mdmest.estimation.gaussian_bound
    task = gaussian_task_with_tc(2.0, (5, 5, 5))
    views = task.sample(10000, seed=1)
    value, stderr = gaussian_bound([v[2000:] for v in views], [v[:2000] for v in views])
    assert 0 < stderr < 0.1 and abs(value - 2.0) < 3 * stderr + 0.05
    rng = np.random.default_rng(0)
    values = []
    for _ in range(10):
        x, y = rng.standard_t(3, (5000, 2)), rng.standard_t(3, (5000, 2))
        values.append(gaussian_bound([x[1000:], y[1000:]], [x[:1000], y[:1000]])[0])
    assert max(values) < 0.01 and abs(np.mean(values)) < 0.005
    few = [v[:99] for v in views]
    assert np.isnan(gaussian_bound([v[2000:] for v in views], few)[0])  # < 100 held-out rows
    # A repeated feature within a view: no fit. Across views (infinite TC), a shrunk fit is
    # still a critic, and its bound is finite and large.
    singular = [np.c_[views[0], views[0][:, :1]], views[1]]
    assert np.isnan(gaussian_bound([v[2000:] for v in singular], [v[:2000] for v in singular])[0])
    shared = [views[0], views[0][:, :2]]
    assert gaussian_bound([v[2000:] for v in shared], [v[:2000] for v in shared])[0] > 2.0


def test_estimate_keeps_the_gaussian_copula_bound_where_it_beats_the_critic():
    # Per-feature maps of wide Gaussian views: the copula undoes them, and the Gaussian critic
    # fitted on the training rows beats a critic trained for only 20 steps (from nothing: with
    # the fitted mixture's start, the critic reads as the Gaussian does from step 0).
    task = TransformedTask(gaussian_task_with_tc(1.0, (8, 8)), "asinh")
    views = task.sample(5000, seed=0)
    config = mdmest.estimation.EstimateConfig(mixture_max_components=0)
    result = mdmest.estimate(views, "dv", steps=20, progress=False, config=config)
    values = result.candidates
    assert values["gaussian_copula"].validation > values["critic"].validation + 0.1
    assert result.chosen == "gaussian_copula" and result.value == values["gaussian_copula"].test
    assert abs(result.value - 1.0) < 0.1 and 0 < result.stderr < 0.1
    # On the test rows, in the transform the critic saw, fitted on the training rows only.
    mapped = [t.numpy().astype(np.float64) for t in result.transform_views(views)]
    train = [m[np.setdiff1d(np.arange(5000), np.r_[result.test_rows])] for m in mapped]
    assert result.n_train + result.n_validation == len(train[0])
    # Without a copula transform (the bound needs normal marginals to be safe), or with only the
    # critic asked for, there is no such candidate.
    raw = mdmest.estimate(views, "dv", steps=20, transform=None, progress=False, config=config)
    assert "gaussian_copula" not in raw.candidates
    only = mdmest.estimate(
        views, "dv", steps=20, candidates=["critic"], progress=False, config=config
    )
    assert set(only.candidates) == {"critic"} and only.chosen == "critic"
    assert only.value == values["critic"].test  # the same critic, the same test rows


def test_the_choice_reads_validation_rows_only():
    """A candidate that reads high on the validation rows is chosen even where it reads low on
    the test rows, and its test value is what is reported."""
    from mdmest.estimation import Candidate
    from mdmest.estimation.protocol import Outcome

    read = []

    def lucky(data, done):
        def score(part):
            read.append(part)
            return (5.0, 0.1) if part == "validation" else (-1.0, 0.1)

        return Outcome("lucky", score("validation"), score)

    views = gaussian_task_with_tc(0.5, (2, 2)).sample(1000, seed=0)
    with pytest.warns(mdmest.EstimateWarning, match="below 0"):
        result = mdmest.estimate(
            views,
            "dv",
            steps=20,
            candidates=["critic", Candidate("lucky", lambda d, done: True, lucky)],
            progress=False,
        )
    assert result.chosen == "lucky" and result.value == -1.0
    assert read == ["validation", "test"]  # the test rows once, after the choice
    with pytest.raises(ValueError, match="unknown candidate 'nope'; the candidates are critic"):
        mdmest.estimate(views, candidates=["nope"], progress=False)
    with pytest.raises(TypeError, match="list of candidate names"):
        mdmest.estimate(views, candidates="critic", progress=False)


def test_copies_warn_that_the_dependency_is_beyond_the_rows_without_numpy_warnings():
    x = np.random.default_rng(0).normal(size=(2000, 3))
    for copy in (x, x + 1e-6 * np.random.default_rng(1).normal(size=x.shape)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = mdmest.estimate([x, copy], "dv", steps=100, progress=False)
        messages = [str(w.message) for w in caught]
        assert all(issubclass(w.category, mdmest.EstimateWarning) for w in caught), messages
        assert any("functions of each other" in m for m in messages)
        assert result.saturated and result.to_dict()["saturated"]
        assert result.warnings and "lower bound only" in result.warnings[0]
    # Independent views earn no such warning.
    y = np.random.default_rng(2).normal(size=(2000, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not mdmest.estimate([x, y], "dv", steps=100, progress=False).saturated


def test_config_is_checked_and_changes_the_split():
    config = mdmest.estimation.EstimateConfig(validation_fraction=0.25)
    views = gaussian_task_with_tc(0.5, (2, 2)).sample(5000, seed=0)
    result = mdmest.estimate(views, steps=20, config=config, candidates=["critic"], progress=False)
    assert (result.n_train, result.n_validation, result.n_test) == (3000, 1000, 1000)
    assert mdmest.estimation.part_sizes(5000) == (3500, 500, 1000)
    with pytest.raises(ValueError, match="validation_fraction must lie in"):
        mdmest.estimation.EstimateConfig(validation_fraction=1.5)
    with pytest.raises(TypeError, match="refit_min_rows must be an int"):
        mdmest.estimation.EstimateConfig(refit_min_rows=2.5)
    with pytest.raises(ValueError, match="mixture_block must be 0 or 1, got 2"):
        mdmest.estimation.EstimateConfig(mixture_block=2)
    with pytest.raises(TypeError, match="config must be an EstimateConfig"):
        mdmest.estimate(views, config={"validation_fraction": 0.2}, progress=False)


def test_transform_views_feed_the_measure_and_raw_rows_are_named_in_a_warning():
    views = correlated_pair(0.5, 2).sample(1000, seed=0)
    views = [100 + 50 * views[0], views[1]]  # the first view far from the transform's scale
    result = mdmest.estimate(views, "dv", steps=20, candidates=["critic"], progress=False)
    mapped = result.transform_views(views)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in mapped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(float(result.measure.estimate(*mapped)))
    raw = [torch.as_tensor(v, dtype=torch.float32) for v in views]
    with pytest.warns(mdmest.EstimateWarning, match="view 0 does not look like rows in the"):
        result.measure.estimate(*raw)
    with pytest.raises(ValueError, match=r"expected 2 views of widths \(2, 2\), got 2 of"):
        result.transform_views([views[0], views[1][:, :1]])
