"""mdmest.experiments: resumable run records, tables, figures, the floor and the suite's tasks."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from mdmest.experiments import (
    RunRecords,
    error_statistics,
    floor_estimate,
    group_records,
    markdown_table,
    pyplot,
    run_pending,
    save_figure,
    step_ratios,
    suite_tasks,
    wide_tasks,
)
from mdmest.tasks import correlated_pair, task_suite


def test_records_append_one_line_each_and_read_back_by_key(tmp_path):
    records = RunRecords(tmp_path / "sub" / "runs.jsonl", key=["setting", "seed"])
    assert records.read() == [] and records.keys() == set()
    records.append({"setting": "dv", "seed": 0, "value": np.float64(0.5), "steps": np.int64(3)})
    records.extend([{"setting": "dv", "seed": 1, "value": 0.75}, {"setting": "f", "seed": 0}])
    lines = records.path.read_text().splitlines()
    assert [json.loads(line) for line in lines][0] == {
        "setting": "dv",
        "seed": 0,
        "value": 0.5,
        "steps": 3,
    }
    assert records.keys() == {("dv", 0), ("dv", 1), ("f", 0)}
    records.append({"setting": "dv", "seed": 1, "value": 0.8})  # a run recorded again
    assert records.by_key()[("dv", 1)]["value"] == 0.8  # the later wins
    with pytest.raises(KeyError, match=r"\['seed'\] missing"):
        records.append({"setting": "dv"})
    with pytest.raises(TypeError, match="JSON values"):
        records.append({"setting": "dv", "seed": 2, "value": object()})
    assert len(records.path.read_text().splitlines()) == 4  # nothing half-written by the refusals
    with pytest.raises(ValueError, match="key must name"):
        RunRecords(tmp_path / "x.jsonl", key="seed")


def test_a_line_cut_short_is_skipped_and_the_next_record_starts_its_own_line(tmp_path):
    records = RunRecords(tmp_path / "runs.jsonl", key=["seed"])
    records.append({"seed": 0, "value": 1.0})
    with records.path.open("a") as f:
        f.write('{"seed": 1, "val')  # a crash in the middle of a line
    with pytest.warns(UserWarning, match="line 2: skipped"):
        assert records.keys() == {(0,)}
    records.append({"seed": 1, "value": 2.0})
    with pytest.warns(UserWarning, match="line 2: skipped"):
        assert [r["value"] for r in records.read()] == [1.0, 2.0]


def test_legacy_csv_rows_read_typed_before_the_json_lines(tmp_path):
    legacy = tmp_path / "runs.csv"
    legacy.write_text("setting,seed,value,note\ndv,0,0.5,\nf,1,nan,x\n")
    records = RunRecords(
        tmp_path / "runs.jsonl",
        key=["family", "setting", "seed"],
        legacy=[legacy],
        fields={"seed": int, "value": float},
        defaults={"family": "equicorrelated"},
    )
    records.append({"family": "sparse", "setting": "dv", "seed": 0, "value": 0.25})
    runs = records.read()
    assert [(r["family"], r["setting"], r["seed"]) for r in runs] == [
        ("equicorrelated", "dv", 0),
        ("equicorrelated", "f", 1),
        ("sparse", "dv", 0),
    ]
    assert runs[0]["value"] == 0.5 and runs[0]["note"] is None and math.isnan(runs[1]["value"])
    assert records.key_of({"setting": "dv", "seed": 0}) == ("equicorrelated", "dv", 0)
    assert legacy.read_text() == "setting,seed,value,note\ndv,0,0.5,\nf,1,nan,x\n"  # never written


def _square(job: dict) -> dict:
    return {"square": job["n"] ** 2}


def test_run_pending_runs_only_what_is_not_recorded(tmp_path):
    records = RunRecords(tmp_path / "runs.jsonl", key=["n"])
    jobs = [{"n": n} for n in range(4)]
    assert run_pending(records, jobs[:2], _square, progress=False) == 2
    seen = []

    def spy(job: dict) -> dict:
        seen.append(job["n"])
        return _square(job)

    assert run_pending(records, jobs, spy, progress=False) == 2
    assert seen == [2, 3]
    assert [(r["n"], r["square"]) for r in records.read()] == [(n, n * n) for n in range(4)]
    assert run_pending(records, jobs, spy, progress=False) == 0
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_pending(records, jobs, spy, workers=0)


def test_a_failing_run_keeps_the_runs_before_it(tmp_path):
    records = RunRecords(tmp_path / "runs.jsonl", key=["n"])

    def fails_at_two(job: dict) -> dict:
        if job["n"] == 2:
            raise RuntimeError("stopped")
        return _square(job)

    with pytest.raises(RuntimeError, match="stopped"):
        run_pending(records, [{"n": n} for n in range(4)], fails_at_two, progress=False)
    assert records.keys() == {(0,), (1,)}


def test_group_records_and_error_statistics():
    runs = [{"cell": "a", "v": 0.9}, {"cell": "b", "v": 2.0}, {"cell": "a", "v": 1.3}]
    groups = group_records(runs, lambda r: r["cell"])
    assert list(groups) == ["a", "b"] and [r["v"] for r in groups["a"]] == [0.9, 1.3]
    stats = error_statistics([r["v"] for r in groups["a"]], truth=1.0)
    assert stats["mean"] == pytest.approx(1.1) and stats["bias"] == pytest.approx(0.1)
    assert stats["std"] == pytest.approx(0.2)
    assert stats["mse"] == pytest.approx((0.01 + 0.09) / 2)
    assert stats["mae"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="one value or more"):
        error_statistics([], 1.0)


def test_markdown_table():
    text = markdown_table(["name", "n", "value"], [["a", 1, "0.5"]], right=["value"])
    assert text.splitlines() == ["| name | n | value |", "|---|---|---:|", "| a | 1 | 0.5 |"]
    with pytest.raises(ValueError, match="a row of 2 cells under a head of 3"):
        markdown_table(["name", "n", "value"], [["a", 1]])
    with pytest.raises(ValueError, match=r"\['values'\] that are not in the head"):
        markdown_table(["value"], [], right=["values"])


def test_figures_are_saved_and_a_missing_matplotlib_is_named(tmp_path, monkeypatch):
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / "line.png")
    assert (tmp_path / "line.png").read_bytes()[:4] == b"\x89PNG"
    assert not pyplot().get_fignums()  # closed
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(
        ImportError, match=r"figures need matplotlib: pip install 'mdmest\[bench\]'"
    ):
        pyplot()


@pytest.mark.slow
def test_floor_estimate_reads_a_correlated_pair():
    torch.set_num_threads(1)
    task = correlated_pair(0.8, 2)  # 1.02 nats
    value = floor_estimate(task.sample(4000, seed=0), 400, 128, 1e-3, 0.2, seed=0)
    assert 0.6 < value < task.total_correlation + 0.1


def test_suite_tasks():
    assert [t.name for t in suite_tasks("two")] == [t.name for t in task_suite(2)]
    assert [t.name for t in suite_tasks("all")] == [t.name for t in task_suite()]
    wide = wide_tasks()
    assert len({t.name for t in wide}) == len(wide) == 8
    assert all(min(t.dims) >= 10 for t in wide)
    assert max(sum(t.dims) for t in suite_tasks("all")) <= 12 < min(sum(t.dims) for t in wide)
    assert [t.name for t in suite_tasks("wide", only=["student_t"])] == [t.name for t in wide[:3]]
    with pytest.raises(ValueError, match="unknown task set 'three'"):
        suite_tasks("three")


def test_step_ratios_tell_a_lasting_slowdown_from_one_slow_step():
    seconds = np.full(1000, 0.004)
    seconds[10] = 0.02  # one step held up (5x): the slowest step sees it, the window does not
    once = step_ratios(seconds, window=25)
    assert once["slowest"] == pytest.approx(5.0) and once["slowest_step"] == 10
    assert once["window"] == pytest.approx(1.0) and once["over"] == 1
    seconds[800:] = 0.4  # every step from 800 on 100x, as subnormal floats did: the window sees it
    lasting = step_ratios(seconds, window=25)
    assert lasting["window"] == pytest.approx(100.0) and lasting["over"] == 201
    assert step_ratios(seconds, window=25, limit=200.0)["over"] == 0
