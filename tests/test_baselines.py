"""The task suite's baseline estimators (benchmarks/baselines.py) and its bookkeeping."""

from __future__ import annotations

import csv
import json
import math
import time

import numpy as np
import pytest
import torch
from _benchmarks import load_script as _script

from mdmest.tasks import correlated_pair, gaussian_task_with_tc

baselines = _script("baselines")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ksg_on_a_correlated_pair():
    task = correlated_pair(0.8, 1)  # 0.511 nats
    values = [baselines.ksg(task.sample(2000, seed=s)) for s in range(3)]
    assert abs(np.mean(values) - task.total_correlation) <= 0.05, values


def test_ksg_reads_about_zero_on_independent_views():
    for dims in ([1, 1], [2, 3], [1, 1, 1]):
        value = baselines.ksg(gaussian_task_with_tc(0.0, dims).sample(2000, seed=0))
        assert abs(value) <= 0.05, (dims, value)


def test_ksg_total_correlation_of_three_views():
    task = gaussian_task_with_tc(1.0, [1, 1, 1])
    values = [baselines.ksg(task.sample(2000, seed=s)) for s in range(3)]
    assert abs(np.mean(values) - 1.0) <= 0.08, values


def test_ksg_is_invariant_to_feature_scale_and_breaks_ties():
    x, y = correlated_pair(0.8, 1).sample(1000, seed=0)
    value = baselines.ksg([x, y])
    assert baselines.ksg([1000 * x, y - 5]) == pytest.approx(value, abs=1e-3)
    # Rounded data has tied rows; the jitter keeps every distance positive and the value finite.
    assert math.isfinite(baselines.ksg([np.round(x, 1), np.round(y, 1)]))


def test_ksg_rejects_bad_input():
    x, y = correlated_pair(0.5, 1).sample(20, seed=0)
    with pytest.raises(ValueError, match="k"):
        baselines.ksg([x, y], k=20)
    with pytest.raises(ValueError, match="same number of rows"):
        baselines.ksg([x, y[:10]])
    with pytest.raises(TypeError):
        baselines.ksg(np.concatenate([x, y], axis=1))


def test_infonce_is_capped_at_log_batch_and_near_a_small_mi():
    task = correlated_pair(0.5, 1)  # 0.144 nats
    start = time.perf_counter()
    value = baselines.infonce(task.sample(2000, seed=0), steps=300, batch_size=128)
    assert time.perf_counter() - start < 5.0
    assert value <= math.log(128)
    assert abs(value - task.total_correlation) <= 0.08, value
    # Far above log B the bound saturates near log B and never passes it.
    strong = correlated_pair(0.999, 4).sample(2000, seed=0)  # 13.8 nats
    capped = baselines.infonce(strong, steps=300, batch_size=16)
    assert math.log(16) - 0.5 < capped <= math.log(16)


def test_infonce_bound_of_a_score_matrix():
    scores = torch.eye(8) * 100.0  # a perfect critic: the bound is log B
    assert float(baselines.infonce_bound(scores)) == pytest.approx(math.log(8))
    assert float(baselines.infonce_bound(torch.zeros(8, 8))) == pytest.approx(0.0, abs=1e-6)


def test_infonce_sums_the_chain_rule_for_three_views():
    views = gaussian_task_with_tc(1.0, [1, 1, 1]).sample(1000, seed=0)
    options = dict(steps=50, batch_size=64, seed=1)
    terms = [
        baselines.infonce_pair(views[0], views[1], **options),
        baselines.infonce_pair(np.concatenate(views[:2], axis=1), views[2], **options),
    ]
    assert baselines.infonce(views, **options) == pytest.approx(sum(terms))


def test_task_suite_resumes_and_scores_the_targets(tmp_path, monkeypatch):
    suite = _script("task_suite")
    tasks = [correlated_pair(0.5, 1), gaussian_task_with_tc(1.0, [1, 1, 1])]
    monkeypatch.setattr(suite, "load_tasks", lambda which="all", only=(): tasks)
    argv = ["--rows", "400", "--seeds", "2", "--estimators", "ksg", "--infonce-steps", "20"]
    argv += ["--out", str(tmp_path), "--no-progress", "--no-plot"]
    assert suite.main(argv) == 0
    path = tmp_path / "task_suite_runs.csv"
    rows = list(csv.DictReader(path.open()))
    assert sorted((r["task"], r["seed"]) for r in rows) == sorted(
        (t.name, str(s)) for t in tasks for s in range(2)
    )
    # A second run with one more estimator runs only the missing (task, estimator, seed) rows.
    argv[argv.index("ksg")] = "ksg,infonce"
    assert suite.main([*argv, "--no-plot"]) == 0
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 8
    assert sorted(r["estimator"] for r in rows).count("ksg") == 4
    for r in rows:
        assert float(r["error"]) == pytest.approx(float(r["value"]) - float(r["truth"]))
    text = (tmp_path / "task_suite.md").read_text()
    assert "| ksg | 4 |" in text and "| infonce | 4 |" in text
    assert "Targets" not in text  # the targets are the library's, and it did not run


def test_task_suite_wide_tasks_lie_outside_the_suites_widths():
    suite = _script("task_suite")
    wide = suite.load_tasks("wide")
    assert len({t.name for t in wide}) == len(wide) == 8
    assert all(min(t.dims) >= 10 for t in wide)
    assert max(sum(t.dims) for t in suite.load_tasks("all")) <= 12 < min(sum(t.dims) for t in wide)
    assert [t.name for t in suite.load_tasks("wide", only=["student_t"])] == [
        t.name for t in wide[:3]
    ]


def test_task_suite_targets():
    suite = _script("task_suite")
    result = {
        "rows": 10_000,
        "summary": {
            "mdmest": {
                "mae_two_view": 0.05,
                "below_floor": 0,
                "min_value": -0.01,
                "off_tasks": [],
                "worst_seconds": 14.0,
                "worst_seconds_task": "a",
                "max_run_seconds": 16.0,
                "step_ratio": 1.6,
                "step_ratio_task": "b",
            },
            "ksg": {"mae_two_view": 0.04},
        },
    }
    met = {name: ok for name, ok, _ in suite.targets(result)}
    assert met == {
        "mean |error| over two-view runs ≤ 0.06 nats": True,
        "mean |error| over two-view runs below infonce's": None,
        "mean |error| over two-view runs below ksg's": False,
        "no value below -0.05 nats": True,
        "no task more than 25% off where the truth is ≥ 0.2 nats": True,
        "at most 15 s per task": True,
        "slowest training step ≤ 1.5× the run's median step": False,
    }


def test_step_time_ratios_tell_a_lasting_slowdown_from_one_slow_step():
    steps = _script("step_times")
    seconds = np.full(1000, 0.004)
    seconds[10] = 0.02  # one step held up (5x): the slowest step sees it, the window does not
    once = steps.ratios(seconds, window=25)
    assert once["slowest"] == pytest.approx(5.0) and once["slowest_step"] == 10
    assert once["window"] == pytest.approx(1.0) and once["over"] == 1
    seconds[800:] = 0.4  # every step from 800 on 100x, as subnormal floats did: the window sees it
    lasting = steps.ratios(seconds, window=25)
    assert lasting["window"] == pytest.approx(100.0) and lasting["over"] == 201


def test_step_times_runs_the_suite_and_its_control(tmp_path, monkeypatch):
    steps = _script("step_times")
    tasks = [correlated_pair(0.5, 1)]
    monkeypatch.setattr(steps, "load_tasks", lambda which="all", only=(): tasks)
    monkeypatch.setattr(steps, "estimate", _few_steps(steps.estimate))
    assert steps.main(["--rows", "600", "--out", str(tmp_path), "--no-progress"]) == 0
    record = json.loads((tmp_path / "step_times.json").read_text())["tasks"][0]
    assert record["task"] == tasks[0].name and record["negatives"] >= 1
    for part in ("train", "control"):
        assert record[part]["slowest"] >= record[part]["p99"] >= 1.0
        assert record[part]["median_ms"] > 0
    assert "| " + tasks[0].name in (tmp_path / "step_times.md").read_text()


def _few_steps(estimate):
    return lambda views, measure, **kw: estimate(views, measure, steps=60, **kw)


def test_task_suite_passes_estimate_options(tmp_path, monkeypatch):
    suite = _script("task_suite")
    seen, original = [], suite.estimate

    def recording(views, measure, **options):
        seen.append(options)
        return original(views, measure, **{**options, "steps": 5})

    monkeypatch.setattr(suite, "estimate", recording)
    monkeypatch.setattr(suite, "load_tasks", lambda which="all", only=(): [correlated_pair(0.5, 1)])
    argv = ["--rows", "400", "--seeds", "1", "--estimators", "mdmest", "--no-plot", "--no-progress"]
    argv += ["--estimate-option", "lr=2e-3", "--estimate-option", "transform=null"]
    assert suite.main([*argv, "--out", str(tmp_path)]) == 0
    assert seen and all(o["lr"] == 0.002 and o["transform"] is None for o in seen)
    with pytest.raises(SystemExit):
        suite.main([*argv, "--estimate-option", "lr", "--out", str(tmp_path)])
