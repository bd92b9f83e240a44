"""The benchmark scripts run as a user runs them, in their smallest settings: their records resume,
the records of earlier releases (CSV) still load, and their tables come out."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from _benchmarks import run_script

from mdmest.experiments import RunRecords, suite_tasks

pytestmark = pytest.mark.slow  # each starts a Python process that imports torch

TINY_LADDER = ["--tcs", "1", "--views", "2", "--dims", "2", "--steps", "5", "--n-samples", "200"]


def _ok(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _runs(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_accuracy_ladder_records_runs_and_resumes(tmp_path):
    argv = [*TINY_LADDER, "--seeds", "1", "--settings", "dv_relu,floor_dv,plugin"]
    _ok(run_script("accuracy_ladder", *argv, "--out", str(tmp_path)))
    rows = json.loads((tmp_path / "ladder_summary.json").read_text())["rows"]
    assert {r["setting"] for r in rows} == {"dv_relu", "floor_dv", "plugin"}
    assert all(np.isfinite(r["mse"]) for r in rows)
    # The Gaussian plug-in on 200 rows of a 1-nat pair is close to 1 nat.
    assert next(r["mean"] for r in rows if r["setting"] == "plugin") == pytest.approx(1.0, abs=0.3)
    assert (tmp_path / "ladder.png").stat().st_size > 0
    targets = (tmp_path / "ladder_targets.md").read_text()
    assert "| 2 | 2 | 1 |" not in targets  # "dv" (the target column) did not run
    assert "family" not in targets  # one family: no column for it
    runs = _runs(tmp_path / "ladder_runs.jsonl")
    assert [(r["family"], r["views"], r["dim"], r["true_tc"], r["seed"]) for r in runs] == [
        ("equicorrelated", 2, 2, 1.0, 0)
    ] * 3
    # A second call with one more seed runs only that seed's three runs.
    _ok(run_script("accuracy_ladder", *argv, "--seeds", "2", "--no-plot", "--out", str(tmp_path)))
    assert sorted(r["seed"] for r in _runs(tmp_path / "ladder_runs.jsonl")) == [0, 0, 0, 1, 1, 1]


def test_accuracy_ladder_task_families(tmp_path):
    argv = ["--tcs", "1", "--views", "2", "--dims", "1,3", "--seeds", "1", "--steps", "5"]
    argv += ["--n-samples", "4000", "--settings", "plugin", "--no-plot", "--out", str(tmp_path)]
    argv += ["--family", "low_rank,random_spectrum,sparse"]
    out = _ok(run_script("accuracy_ladder", *argv))
    # cells a builder cannot reach are skipped: sparse (2 strong features per view) needs d >= 2,
    # and a rank-2 latent seen through one feature per view gives two views at most 0.19 nats
    assert "skipped sparse at 1 nats, K=2, d=1" in out
    assert "skipped low_rank at 1 nats, K=2, d=1" in out and "at most 0.191 nats" in out
    cells = sorted((r["family"], r["dim"]) for r in _runs(tmp_path / "ladder_runs.jsonl"))
    assert cells == [("low_rank", 3), ("random_spectrum", 1), ("random_spectrum", 3), ("sparse", 3)]
    # each family's task has the level asked for: the plug-in on 4000 rows finds about 1 nat
    rows = json.loads((tmp_path / "ladder_summary.json").read_text())["rows"]
    assert all(r["mean"] == pytest.approx(1.0, abs=0.1) for r in rows)
    assert [(r["family"], r["dim"]) for r in rows] == cells
    summary = (tmp_path / "ladder_summary.md").read_text().splitlines()
    assert summary[0].startswith("| family | K | d | true TC | setting |")
    assert summary[2].startswith("| low_rank | 2 | 3 | 1 | plugin | 1 |")
    refused = run_script("accuracy_ladder", *argv, "--family", "banded")
    assert refused.returncode == 2 and "unknown families ['banded']" in refused.stderr


def _old_ladder_csv(path, runs, family_column=False):
    """A ladder_runs.csv as the releases before the JSON-lines records wrote it."""
    fields = ["setting", "views", "dim", "true_tc", "seed", "estimate", "seconds"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields + ["family"] * family_column)
        writer.writerows(runs)


def test_accuracy_ladder_reads_the_csv_of_earlier_releases(tmp_path):
    legacy = tmp_path / "ladder_runs.csv"
    _old_ladder_csv(legacy, [["plugin", 2, 2, 1.0, 0, 0.98, 0.01]])  # made before --family
    before = legacy.read_text()
    argv = [*TINY_LADDER, "--settings", "plugin", "--no-plot", "--out", str(tmp_path)]
    _ok(run_script("accuracy_ladder", *argv, "--seeds", "2", "--family", "sparse,equicorrelated"))
    assert legacy.read_text() == before  # read, never written
    # the CSV's run is not redone; its row, without a family, reads "equicorrelated"
    runs = _runs(tmp_path / "ladder_runs.jsonl")
    assert sorted((r["family"], r["seed"]) for r in runs) == [
        ("equicorrelated", 1),
        ("sparse", 0),
        ("sparse", 1),
    ]
    summary = (tmp_path / "ladder_summary.md").read_text()
    assert "| equicorrelated | 2 | 2 | 1 | plugin | 2 |" in summary
    rows = json.loads((tmp_path / "ladder_summary.json").read_text())["rows"]
    assert [(r["family"], r["seeds"]) for r in rows] == [("equicorrelated", 2), ("sparse", 2)]
    out = _ok(run_script("accuracy_ladder", "--summarize", "--no-plot", "--columns", "2:2:1",
                         "--out", str(tmp_path)))  # fmt: skip
    columns = (tmp_path / "ladder_columns.md").read_text().splitlines()
    assert columns[0] == "| family | setting | K=2, d=2, 1 | s/run |" and columns[0] in out
    assert [line.split(" | ")[0] for line in columns[2:]] == ["| equicorrelated", "| sparse"]
    assert "0.980 (-2%, n=1)" not in columns[2]  # the mean of both seeds, not the CSV's alone
    empty = run_script("accuracy_ladder", "--summarize", "--out", str(tmp_path / "none"))
    assert empty.returncode == 2 and "no results at" in empty.stderr


def test_accuracy_ladder_runs_in_worker_processes(tmp_path):
    argv = [*TINY_LADDER, "--seeds", "2", "--settings", "dv,plugin_heldout", "--workers", "2"]
    _ok(run_script("accuracy_ladder", *argv, "--no-plot", "--out", str(tmp_path)))
    runs = _runs(tmp_path / "ladder_runs.jsonl")
    assert sorted((r["setting"], r["seed"]) for r in runs) == [
        ("dv", 0),
        ("dv", 1),
        ("plugin_heldout", 0),
        ("plugin_heldout", 1),
    ]
    assert "held-out plug-in" in (tmp_path / "ladder_targets.md").read_text()


def test_heldout_plugin_is_close_to_the_truth(tmp_path):
    argv = ["--views", "2", "--dims", "2", "--seeds", "3", "--n-samples", "5000"]
    argv += ["--settings", "plugin_heldout", "--no-plot", "--out", str(tmp_path)]
    _ok(run_script("accuracy_ladder", *argv, "--tcs", "0,1"))
    means = {
        r["true_tc"]: r["mean"]
        for r in json.loads((tmp_path / "ladder_summary.json").read_text())["rows"]
    }
    assert means[1.0] == pytest.approx(1.0, abs=0.05)
    # Fitted on one split and averaged on the other: independent views read about 0 or less.
    assert -0.03 < means[0.0] < 0.01


def test_task_suite_resumes_reads_old_csv_and_scores_the_targets(tmp_path):
    only = ["--only", "student_t(dof=1, dims=(1, 1))", "--only", "student_t(dof=2, dims=(2, 2, 2))"]
    argv = ["--rows", "400", "--seeds", "2", "--infonce-steps", "20", *only]
    argv += ["--out", str(tmp_path), "--no-progress", "--no-plot"]
    # one run as the releases before the JSON-lines records wrote it: not run again
    header = "task,views,dims,estimator,seed,rows,value,truth,error,seconds,step_max,step_median"
    row = ["student_t(dof=1, dims=(1, 1))", 2, "1x1", "ksg", 0, 400, 0.3, 0.224, 0.076, 0.1, "", ""]
    with (tmp_path / "task_suite_runs.csv").open("w", newline="") as f:
        csv.writer(f).writerows([[*header.split(","), "candidates"], [*row, ""]])
    _ok(run_script("task_suite", *argv, "--estimators", "ksg"))
    runs = RunRecords(tmp_path / "task_suite_runs.jsonl", ["task", "estimator", "seed"]).read()
    assert sorted((r["views"], r["seed"]) for r in runs) == [(2, 1), (3, 0), (3, 1)]
    # A second run with one more estimator runs only the missing (task, estimator, seed) runs.
    _ok(run_script("task_suite", *argv, "--estimators", "ksg,infonce"))
    runs = _runs(tmp_path / "task_suite_runs.jsonl")
    assert sorted(r["estimator"] for r in runs) == ["infonce"] * 4 + ["ksg"] * 3
    for r in runs:
        assert r["error"] == pytest.approx(r["value"] - r["truth"])
        assert r["step_max"] is None  # the baselines record no step times
    text = (tmp_path / "task_suite.md").read_text()
    assert "| ksg | 4 |" in text and "| infonce | 4 |" in text
    assert "| student_t(dof=1, dims=(1, 1)) | 2 | 0.224 |" in text
    assert "Targets" not in text  # the targets are the library's, and it did not run


def test_task_suite_targets_from_recorded_runs(tmp_path):
    task = suite_tasks("two", only=["student_t(dof=1, dims=(1, 1))"])[0]
    truth = task.total_correlation
    runs = [  # estimator, error, seconds, slowest step, median step
        ("mdmest", 0.05, 14.0, 1.6, 1.0),
        ("ksg", 0.04, 0.1, None, None),
    ]
    records = RunRecords(tmp_path / "task_suite_runs.jsonl", ["task", "estimator", "seed", "rows"])
    for estimator, error, seconds, slowest, median in runs:
        records.append({"task": task.name, "estimator": estimator, "seed": 0, "rows": 10_000,
                        "views": 2, "value": truth + error, "truth": truth, "error": error,
                        "seconds": seconds, "step_max": slowest, "step_median": median})  # fmt: skip
    argv = ["--summarize", "--tasks", "two", "--only", task.name, "--no-plot"]
    out = _ok(run_script("task_suite", *argv, "--out", str(tmp_path)))
    assert [line for line in out.splitlines() if line.startswith("- ")] == [
        "- PASS: mean |error| over two-view runs ≤ 0.06 nats: 0.0500 nats",
        "- n/a: mean |error| over two-view runs below infonce's: not run",
        "- FAIL: mean |error| over two-view runs below ksg's: 0.0500 vs 0.0400 nats",
        f"- PASS: no value below -0.05 nats: 0 below; lowest {truth + 0.05:+.4f}",
        "- PASS: no task more than 25% off where the truth is ≥ 0.2 nats: none",
        f"- PASS: at most 15 s per task: worst 14.0 s ({task.name}); slowest single run 14.0 s",
        f"- FAIL: slowest training step ≤ 1.5× the run's median step: worst 1.60× ({task.name})",
    ]


def test_task_suite_passes_estimate_options(tmp_path):
    argv = ["--rows", "400", "--seeds", "1", "--estimators", "mdmest", "--no-plot"]
    argv += [
        "--no-progress",
        "--only",
        "additive_noise(epsilon=0.1, dim=1)",
        "--out",
        str(tmp_path),
    ]
    out = _ok(run_script("task_suite", *argv, "--estimate-option", "steps=20",
                         "--estimate-option", "transform=null"))  # fmt: skip
    assert "Targets (mdmest):" in out
    (run,) = _runs(tmp_path / "task_suite_runs.jsonl")
    assert run["step_max"] >= run["step_median"] > 0
    refused = run_script("task_suite", *argv, "--estimate-option", "lr")
    assert refused.returncode == 2 and "expected KEY=VALUE, got 'lr'" in refused.stderr
    # the option reaches estimate: a bad value is refused by it, naming the option
    argv[argv.index(str(tmp_path))] = str(tmp_path / "bad")
    bad = run_script("task_suite", *argv, "--estimate-option", "steps=0")
    assert bad.returncode != 0 and "steps" in bad.stderr


def test_step_times_runs_the_suite_and_its_control(tmp_path):
    name = "additive_noise(epsilon=0.1, dim=1)"
    argv = ["--rows", "600", "--steps", "60", "--only", name, "--no-progress"]
    _ok(run_script("step_times", *argv, "--out", str(tmp_path)))
    record = json.loads((tmp_path / "step_times.json").read_text())["tasks"][0]
    assert record["task"] == name and record["negatives"] >= 1
    for part in ("train", "control"):
        assert record[part]["slowest"] >= record[part]["p99"] >= 1.0
        assert record[part]["median_ms"] > 0
    assert "| " + name in (tmp_path / "step_times.md").read_text()


def test_scaling_smoke(tmp_path):
    argv = ["--batches", "64,128", "--views", "2,3", "--views-batch", "64", "--repeats", "1"]
    _ok(run_script("scaling", *argv, "--out", str(tmp_path)))
    meta = json.loads((tmp_path / "scaling.json").read_text())
    assert len(meta["rows"]) == 4 and all(r["peak_mib"] > 0 for r in meta["rows"])
    assert (tmp_path / "scaling.png").stat().st_size > 0
