"""The random-task generator (mdmest.tasks.random): draws, truths and errors."""

import json

import numpy as np
import pytest
from scipy import stats

import mdmest.tasks.mixtures as mixtures
from mdmest.reference import gaussian_total_correlation
from mdmest.tasks import (
    JUDGING_SEEDS,
    RANDOM_STRUCTURES,
    SECOND_JUDGING_SEEDS,
    TUNING_SEEDS,
    Task,
    draw_seeds,
    judging_draw,
    random_task,
    random_tasks,
)
from mdmest.tasks import random as rt


def _first_seed(structure: str, views: int | None = None) -> int:
    """The first tuning seed whose draw has this structure (planned only: no truth built)."""
    for seed in TUNING_SEEDS:
        _, dims, drawn, _ = rt._plan(seed)
        if drawn == structure and (views is None or len(dims) == views):
            return seed
    raise AssertionError(f"no tuning seed draws {structure}")


def test_seed_ranges_are_disjoint_and_large_enough():
    draws = (set(TUNING_SEEDS), set(JUDGING_SEEDS), set(SECOND_JUDGING_SEEDS))
    assert sum(map(len, draws)) == len(set().union(*draws))
    assert len(JUDGING_SEEDS) >= 80 and len(SECOND_JUDGING_SEEDS) >= 80


def test_same_seed_same_task_and_samples():
    seed = _first_seed("mixture_random")
    a = random_task(seed)
    rt._draw.cache_clear()
    b = random_task(seed)
    assert a is not b
    assert (a.name, a.dims, a.structure) == (b.name, b.dims, b.structure)
    assert a.total_correlation == b.total_correlation
    assert a.truth_stderr == b.truth_stderr
    for x, y in zip(a.sample(50, seed=3), b.sample(50, seed=3)):
        np.testing.assert_array_equal(x, y)
    other = random_task(seed + 1)
    assert other.name != a.name


def test_planned_draws_cover_the_ranges():
    plans = [rt._plan(seed)[1:] for seed in TUNING_SEEDS]
    assert {len(dims) for dims, _, _ in plans} == {2, 3, 4, 5}
    assert 0.25 <= np.mean([len(dims) == 2 for dims, _, _ in plans]) <= 0.55
    widths = [d for dims, _, _ in plans for d in dims]
    assert min(widths) == 1 and max(widths) == 32
    assert {s for _, s, _ in plans} == set(RANDOM_STRUCTURES)
    targets = np.array([t for _, _, t in plans])
    assert targets.min() >= 0.1 and targets.max() <= 6.0
    assert targets.min() < 0.15 and targets.max() > 4.5


def test_draws_stay_in_range():
    found = set()
    for task in random_tasks(range(16)):
        assert isinstance(task, Task)
        assert 2 <= task.num_views <= 5
        assert all(1 <= d <= 32 for d in task.dims)
        assert 0.1 <= task.target <= 6.0
        assert task.structure in RANDOM_STRUCTURES
        assert task.total_correlation > 0.05
        assert task.total_correlation < 6.5
        assert task.truth_stderr >= 0
        # The truth is near the target, except for a shared-cluster mixture capped below it.
        if task.structure != "mixture_shared" and task.base_structure != "mixture_shared":
            assert task.total_correlation == pytest.approx(task.target, rel=0.15)
        views = task.sample(7, seed=1)
        assert [v.shape for v in views] == [(7, d) for d in task.dims]
        assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in views)
        found.add(task.structure)
    assert len(found) >= 4


def test_monte_carlo_truths_have_small_standard_errors():
    for structure in ("mixture_shared", "mixture_random", "sign_symmetric"):
        task = random_task(_first_seed(structure))
        assert task.truth_stderr > 0
        assert task.truth_stderr <= 0.015 * task.total_correlation + 1e-3


def test_monte_carlo_of_a_gaussian_equals_its_closed_form():
    rng = np.random.default_rng(0)
    dims = (3, 2, 4)
    d = sum(dims)
    diag = np.exp(rng.normal(0, 0.5, d))
    factors = rng.standard_normal((d, 2))
    mixture = mixtures._Mixture(np.ones(1), np.zeros((1, d)), diag[None], factors[None], dims)
    value, stderr, rows = mixtures._mc_truth(mixture, np.random.default_rng(1))
    exact = gaussian_total_correlation(np.diag(diag) + factors @ factors.T, dims)
    assert rows >= mixtures._MC_MIN_ROWS
    assert abs(value - exact) <= 3 * stderr
    assert stderr <= 0.015 * exact


def test_gaussian_density_matches_scipy():
    rng = np.random.default_rng(2)
    d = 4
    diag = np.exp(rng.normal(0, 0.5, d))
    factors = rng.standard_normal((d, 2))
    mean = rng.standard_normal(d)
    x = rng.standard_normal((30, d))
    ours = mixtures._log_mixture(x, np.ones(1), mean[None], diag[None], factors[None])
    cov = np.diag(diag) + factors @ factors.T
    np.testing.assert_allclose(ours, stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-10)


def test_shared_cluster_mixture_matches_grid_integration():
    """Two 1-feature views sharing a 3-cluster label: MC truth against a 2-D grid (scipy)."""
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [1.5, -1.0], [-1.2, 1.8]])
    variances = np.array([[1.0, 0.5], [0.6, 1.2], [0.8, 0.7]])
    mixture = mixtures._Mixture(weights, means, variances, np.zeros((3, 2, 0)), (1, 1))
    value, stderr, _ = mixtures._mc_truth(mixture, np.random.default_rng(3))
    grid = np.linspace(-9, 9, 1201)
    step = grid[1] - grid[0]
    px = [stats.norm(m, np.sqrt(v)).pdf(grid) for m, v in zip(means[:, 0], variances[:, 0])]
    py = [stats.norm(m, np.sqrt(v)).pdf(grid) for m, v in zip(means[:, 1], variances[:, 1])]
    joint = sum(w * np.outer(a, b) for w, a, b in zip(weights, px, py))
    mx = sum(w * a for w, a in zip(weights, px))
    my = sum(w * b for w, b in zip(weights, py))
    ratio = np.where(joint > 0, joint / np.maximum(np.outer(mx, my), 1e-300), 1.0)
    exact = float(np.sum(joint * np.log(ratio)) * step * step)
    assert abs(value - exact) <= 3.5 * stderr + 1e-4
    assert stderr <= 0.015 * exact


def test_sign_symmetric_views_are_linearly_uncorrelated_but_dependent():
    task = random_task(_first_seed("sign_symmetric"))
    views = [v.astype(np.float64) for v in task.sample(200_000, seed=4)]
    n = len(views[0])
    for i in range(task.num_views):
        for j in range(i + 1, task.num_views):
            a = (views[i] - views[i].mean(0)) / views[i].std(0)
            b = (views[j] - views[j].mean(0)) / views[j].std(0)
            corr = a.T @ b / n
            # Standard error of a sample correlation of non-Gaussian data: allow 6/sqrt(n)
            # times the excess-kurtosis factor, at most about 0.03 here.
            assert np.abs(corr).max() < 6 * np.sqrt(3.0 / n), (i, j, np.abs(corr).max())
    assert task.total_correlation > 0.05
    # Dependent through the magnitudes: squared features correlate across some pair of views.
    sq = [((v - v.mean(0)) ** 2).sum(1) for v in views]
    assert (
        max(abs(np.corrcoef(sq[i], sq[j])[0, 1]) for i in range(len(sq)) for j in range(i)) > 0.02
    )


def test_mixture_truth_against_a_large_sample_plug_in():
    """A shared-cluster task's truth against the exact pointwise values of its own large sample
    pushed through its per-view maps: the maps leave the TC unchanged, so the inverse maps give
    the latent rows back and the same mean."""
    task = random_task(_first_seed("mixture_shared", views=2))
    inner = task.inner
    views = [v.astype(np.float64) for v in inner.sample(200_000, seed=9)]
    latent = np.concatenate(
        [np.linalg.solve(a, (v - shift).T).T for v, (a, shift) in zip(views, inner.maps)], axis=1
    )
    values = inner.mixture.pointwise_tc(latent)
    se = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - task.total_correlation) <= 3.5 * np.hypot(se, task.truth_stderr)


def test_transformed_tasks_keep_the_base_value():
    task = random_task(_first_seed("transformed"))
    assert task.base_structure in RANDOM_STRUCTURES[:-1]
    assert task.total_correlation == task.inner.base.total_correlation
    assert task.details["transform"] in ("asinh", "normal_cdf", "half_cube", "spiral")


def test_named_draws():
    assert [t.seed for t in random_tasks(range(2))] == [0, 1]
    for bad in ("judge", "judging-0", "judging-x"):
        with pytest.raises(ValueError, match="'tuning', 'judging'"):
            random_tasks(bad)
    assert judging_draw(2) == SECOND_JUDGING_SEEDS and len(judging_draw(3)) == 100
    assert draw_seeds("judging-3") == judging_draw(3) and draw_seeds("tuning") == TUNING_SEEDS


@pytest.mark.parametrize("bad", [-1, -100])
def test_negative_seed_is_named(bad):
    with pytest.raises(ValueError, match="seed must be >= 0"):
        random_task(bad)


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_non_int_seed_is_named(bad):
    with pytest.raises(TypeError, match="seed must be an int"):
        random_task(bad)


def test_bad_seeds_argument_is_named():
    with pytest.raises(TypeError, match="iterable of ints"):
        random_tasks(5)
    with pytest.raises(TypeError, match="seed must be an int"):
        random_tasks([0, 1.0])


def test_bad_sample_size_is_named():
    with pytest.raises(ValueError, match="n must be a positive int"):
        random_task(_first_seed("gaussian")).sample(0)


# ------------------------------------------------------------------ the benchmark and MINE


@pytest.fixture
def bench():
    import torch
    from _benchmarks import load_script

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_script("random_tasks")
    torch.set_num_threads(threads)


def test_benchmark_seed_ranges(bench):
    assert bench.parse_seeds("tuning") == ("tuning", list(TUNING_SEEDS))
    assert bench.parse_seeds("judging-2") == ("judging-2", list(SECOND_JUDGING_SEEDS))
    assert bench.parse_seeds("judging-3") == ("judging-3", list(range(300_000, 300_100)))
    assert bench.parse_seeds("3-5") == ("3-5", [3, 4, 5])
    assert bench.parse_seeds("7") == ("7-7", [7])
    for bad in ("5-3", "a-b", "-1-2", "judge"):
        with pytest.raises(Exception, match="--seeds"):
            bench.parse_seeds(bad)


def test_benchmark_refuses_the_judging_draw_without_its_flag(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "judging", "--out", str(tmp_path)])
    assert "never used for tuning" in capsys.readouterr().err
    for first in (JUDGING_SEEDS[0], SECOND_JUDGING_SEEDS[0], judging_draw(3)[0]):
        with pytest.raises(SystemExit):
            bench.main(["--seeds", f"{first - 1}-{first}", "--out", str(tmp_path)])
    assert not (tmp_path / "runs.jsonl").exists()


def test_benchmark_records_resumes_and_summarises(bench, tmp_path, monkeypatch):
    calls, current = [], {}

    def drawn(seed):
        current["task"] = random_task(seed)
        return current["task"]

    def run_one(name, views, args):
        calls.append(name)
        value = {"mdmest": 1.05, "ksg": 0.7}[name] * current["task"].total_correlation
        return value, {"chosen": "critic"} if name == "mdmest" else {}

    seeds = [_first_seed("student_t", views=2), _first_seed("gaussian", views=3)]
    truths = {s: random_task(s).total_correlation for s in seeds}
    monkeypatch.setattr(bench, "random_task", drawn)
    monkeypatch.setattr(bench, "run_one", run_one)
    out = tmp_path / "res"
    argv = ["--rows", "200", "--estimators", "mdmest,ksg", "--out", str(out), "--no-progress"]
    for seed in seeds:
        assert bench.main(["--seeds", str(seed), *argv, "--no-plot"]) == 0
    records = bench.read_runs(out / "runs.jsonl")
    # mdmest on both tasks, ksg only on the two-view one.
    assert sorted((r["seed"], r["estimator"]) for r in records) == sorted(
        [(seeds[0], "mdmest"), (seeds[0], "ksg"), (seeds[1], "mdmest")]
    )
    for r in records:
        assert r["rel_error"] == pytest.approx({"mdmest": 0.05, "ksg": -0.3}[r["estimator"]])
        # Which candidate mdmest's value came from is recorded; peers have none.
        assert r.get("chosen") == ("critic" if r["estimator"] == "mdmest" else None)
    # A torn last line is skipped, and a rerun appends nothing new.
    with open(out / "runs.jsonl", "a") as f:
        f.write('{"seed": 1, "estim')
    calls.clear()
    for seed in seeds:
        assert bench.main(["--seeds", str(seed), *argv, "--no-plot"]) == 0
    assert calls == []
    lo, hi = min(seeds), max(seeds)
    assert bench.main(["--seeds", f"{lo}-{hi}", *argv, "--summarize"]) == 0
    assert len(bench.read_runs(out / "runs.jsonl")) == 3
    summary = json.loads((out / "random_tasks_summary.json").read_text())
    assert summary["tasks_run"] == 2
    wanted = [s for s in seeds if truths[s] >= bench.TARGET_FROM]
    if wanted:
        lib = summary["summary"]["mdmest"]
        assert lib["tasks"] == len(wanted)
        assert lib["mean_abs_rel"] == pytest.approx(0.05)
        assert lib["above_high"] == 0 and lib["below_low"] == 0
    assert (out / "random_tasks.png").stat().st_size > 1000
    text = (out / "random_tasks.md").read_text()
    assert "+5.0%" in text
    # Records without candidates give no ablation rows; the option still summarises.
    argv_without = [*argv, "--summarize", "--without", "deeper", "--no-plot"]
    assert bench.main(["--seeds", f"{lo}-{hi}", *argv_without]) == 0
    assert "critic" in (out / "random_tasks.md").read_text()


def test_without_rereads_the_choice_among_the_other_recorded_candidates(bench):
    record = {
        "seed": 3, "estimator": "mdmest", "truth": 2.0, "value": 1.8, "chosen": "deeper",
        "candidates": {
            "critic": {"validation": 1.5, "test": 1.4},
            "deeper": {"validation": 1.9, "test": 1.8},
            "gaussian_copula": {"validation": 1.6, "test": 1.7},
        },
    }  # fmt: skip
    peer = {"seed": 3, "estimator": "ksg", "truth": 2.0, "value": 1.0}
    (derived,) = bench.without([record, peer], "deeper")
    assert derived["estimator"] == "mdmest-without-deeper"
    # The highest validation value among the others chooses; its test value is read.
    assert derived["chosen"] == "gaussian_copula" and derived["value"] == 1.7
    assert derived["rel_error"] == pytest.approx(-0.15)
    assert record["value"] == 1.8 and record["estimator"] == "mdmest"  # not changed
    assert bench.without([record], "size_bound")[0]["value"] == 1.8  # never chosen: the same


def test_candidate_seconds_say_where_the_time_goes(bench):
    records = [
        {"estimator": "mdmest", "candidates": {
            "critic": {"validation": 1.0, "test": 1.0, "seconds": 30.0},
            "size_bound": {"validation": 0.0, "test": 0.0, "seconds": 0.5},
        }},
        {"estimator": "mdmest", "candidates": {
            "critic": {"validation": 1.0, "test": 1.0, "seconds": 50.0},
            "weight_decay": {"validation": 1.0, "test": 1.0, "seconds": 19.5},
        }},
        {"estimator": "mdmest", "candidates": {"critic": {"validation": 1.0, "test": 1.0}}},
        {"estimator": "ksg", "value": 1.0},
    ]  # fmt: skip
    timed = bench.candidate_seconds(records)
    # Ordered by total time; a record that did not time its candidates adds nothing.
    assert list(timed) == ["critic", "weight_decay", "size_bound"]
    assert timed["critic"] == {"tasks": 2, "mean_seconds": 40.0, "share": 0.8}
    assert timed["weight_decay"]["share"] == pytest.approx(0.195)
    assert bench.candidate_seconds(records[2:]) == {}


def test_mine_reads_a_correlated_pair(bench):
    from mdmest.experiments import baselines
    from mdmest.tasks import correlated_pair

    task = correlated_pair(0.8, 1)  # 0.511 nats
    value = baselines.mine(task.sample(3000, seed=0), steps=400, seed=0)
    assert abs(value - task.total_correlation) < 0.15
    independent = baselines.mine(correlated_pair(0.0, 2).sample(3000, seed=1), steps=200)
    assert abs(independent) < 0.1


def test_mine_sums_the_chain_rule_and_names_bad_input(bench):
    from mdmest.experiments import baselines
    from mdmest.tasks import gaussian_task_with_tc

    views = gaussian_task_with_tc(1.0, [1, 1, 1]).sample(600, seed=0)
    options = dict(steps=30, batch_size=64, seed=1)
    terms = [
        baselines.mine_pair(views[0], views[1], **options),
        baselines.mine_pair(np.concatenate(views[:2], axis=1), views[2], **options),
    ]
    assert baselines.mine(views, **options) == pytest.approx(sum(terms))
    with pytest.raises(ValueError, match="ema must lie in"):
        baselines.mine_pair(views[0], views[1], ema=0.0)
    with pytest.raises(ValueError, match="too few"):
        baselines.mine_pair(views[0][:3], views[1][:3])


def test_benchmark_records_the_mixture_start_of_the_chosen_critic(bench, monkeypatch):
    import functools

    import mdmest

    rng = np.random.default_rng(0)
    label = rng.integers(3, size=4000)
    centres = rng.normal(scale=3.0, size=(2, 3, 4))  # three clusters shared by two 4-d views
    views = [centres[k, label] + rng.normal(size=(4000, 4)) for k in range(2)]
    quick = functools.partial(mdmest.estimate, steps=20, candidates=["critic"], eval_negatives=4)
    monkeypatch.setattr(bench, "estimate", quick)
    value, extra = bench.run_one("mdmest", views, None)
    assert extra["chosen"] == "critic" and extra["mixture_start"] >= 2
    assert extra["mixture_covariance"] in ("full", "block")
    assert extra["candidates"]["critic"]["start_covariance"] == extra["mixture_covariance"]
    flat = [rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))]
    flat_extra = bench.run_one("mdmest", flat, None)[1]
    assert flat_extra["mixture_start"] == 0 and flat_extra["mixture_covariance"] == ""
