"""Smoke tests of the experiments and benchmark scripts in their smallest settings."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _benchmarks import load_script as _script

from mdmest.experiments import gaussian
from mdmest.reference import gaussian_mutual_information
from mdmest.sampling import shifted_product_indices
from mdmest.tasks import gaussian_task_with_tc


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_fig1_smallest_setting_hits_the_truth(tmp_path):
    """DV at ρ = 0.9, d = 5 (true MI ≈ 4.15 nats) within 10%: 600 steps of batch 256, cosine lr,
    shifted negatives, seed 0 (3.96 nats when this test was written; 3.92 with seed 1)."""
    argv = ["--quick", "--grid", "0.9", "--measures", "dv", "--seeds", "1", "--steps", "600"]
    assert _script("gaussian_fig1").main([*argv, "--out", str(tmp_path), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "gaussian_summary.json").read_text())
    row = summary["summary"][0]
    truth = gaussian_mutual_information(0.9, 5)
    assert row["true_tc"] == pytest.approx(truth)
    assert abs(row["dv_mean"] - truth) <= 0.1 * truth, row
    assert (tmp_path / "gaussian.png").stat().st_size > 0
    with (tmp_path / "gaussian_records.csv").open() as f:
        assert [r["measure"] for r in csv.DictReader(f)] == ["dv"]


def test_fig1_all_measures_and_references(tmp_path, capsys):
    argv = ["--quick", "--grid", "0,0.8", "--seeds", "1", "--steps", "5", "--n-samples", "400"]
    argv += ["--n-reference", "100", "--out", str(tmp_path), "--no-progress"]
    assert _script("gaussian_fig1").main(argv) == 0
    records = list(csv.DictReader((tmp_path / "gaussian_records.csv").open()))
    measures = {r["measure"] for r in records}
    assert measures == {"dv", "f", "wasserstein", "w1_pot", "w1_pot_independent", "w2_upper"}
    table = capsys.readouterr().out
    assert "true MI" in table and "W1 POT" in table and "0.80" in table


def test_multiview_script(tmp_path):
    argv = ["--quick", "--grid", "1", "--measures", "dv,f", "--seeds", "2", "--steps", "5"]
    argv += ["--n-samples", "300", "--no-plot", "--no-progress", "--out", str(tmp_path)]
    assert _script("gaussian_multiview").main(argv) == 0
    meta = json.loads((tmp_path / "gaussian_k3_summary.json").read_text())
    assert meta["config"]["views"] == 3
    assert meta["summary"][0]["true_tc"] == pytest.approx(1.0)
    assert not (tmp_path / "gaussian_k3.png").exists()


def test_config_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown measure"):
        gaussian.GaussianConfig(measures=("dv", "mine"))
    with pytest.raises(ValueError, match="unknown sampler"):
        gaussian.GaussianConfig(sampler="roll")
    with pytest.raises(ValueError, match=r"correlation rho in \(-1, 1\), got 1.5"):
        gaussian.GaussianConfig(grid=(0.5, 1.5))
    with pytest.raises(ValueError, match="total correlation in nats, a finite number >= 0"):
        gaussian.GaussianConfig(views=3, grid=(-1.0,))
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        gaussian.GaussianConfig(steps=0)
    with pytest.raises(ValueError, match="grid is empty"):
        gaussian.GaussianConfig(grid=())


def test_workers_give_the_same_records_and_warnings():
    """Each run draws its rows and critic from its own seeds: two processes give the records of
    one, and the warnings raised in the workers reach the caller."""
    import warnings

    config = gaussian.GaussianConfig(
        grid=(0.0, 0.5), measures=("dv", "wasserstein"), seeds=1, steps=5, n_samples=300,
        n_reference=60,
    )  # fmt: skip
    runs = {}
    for workers in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = gaussian.run_experiment(config, progress=False, workers=workers)
        runs[workers] = (
            [{k: v for k, v in r.items() if k != "seconds"} for r in records],
            sorted(str(w.message) for w in caught),
        )
    assert runs[1] == runs[2]
    assert len(runs[1][0]) == 4 + 2 * 3  # 4 trainings; per grid point w1_pot, independent, w2
    assert runs[1][1], "5 steps on 240 rows should warn"
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        gaussian.run_experiment(config, workers=0)


def test_accuracy_ladder_smoke(tmp_path):
    ladder = _script("accuracy_ladder")
    argv = ["--tcs", "1", "--views", "2", "--dims", "2", "--seeds", "1", "--steps", "5"]
    argv += ["--n-samples", "200", "--settings", "dv_relu,floor_dv,plugin", "--out", str(tmp_path)]
    assert ladder.main(argv) == 0
    rows = json.loads((tmp_path / "ladder_summary.json").read_text())["rows"]
    assert {r["setting"] for r in rows} == {"dv_relu", "floor_dv", "plugin"}
    assert all(np.isfinite(r["mse"]) for r in rows)
    # The Gaussian plug-in on 200 rows of a 1-nat pair is close to 1 nat.
    assert next(r["mean"] for r in rows if r["setting"] == "plugin") == pytest.approx(1.0, abs=0.3)
    assert (tmp_path / "ladder.png").stat().st_size > 0
    targets = (tmp_path / "ladder_targets.md").read_text()
    assert "| 2 | 2 | 1 |" not in targets  # "dv" (the target column) did not run
    # A second call resumes: nothing left to run, the same rows come back.
    assert ladder.main(argv) == 0
    assert len(list(csv.DictReader((tmp_path / "ladder_runs.csv").open()))) == 3


def test_accuracy_ladder_task_families(tmp_path, capsys):
    ladder = _script("accuracy_ladder")
    argv = ["--tcs", "1", "--views", "2", "--dims", "1,3", "--seeds", "1", "--steps", "5"]
    argv += ["--n-samples", "4000", "--settings", "plugin", "--no-plot", "--out", str(tmp_path)]
    argv += ["--family", "low_rank,random_spectrum,sparse"]
    assert ladder.main(argv) == 0
    # cells a builder cannot reach are skipped: sparse (2 strong features per view) needs d >= 2,
    # and a rank-2 latent seen through one feature per view gives two views at most 0.19 nats
    out = capsys.readouterr().out
    assert "skipped sparse at 1 nats, K=2, d=1" in out
    assert "skipped low_rank at 1 nats, K=2, d=1" in out and "at most 0.191 nats" in out
    runs = list(csv.DictReader((tmp_path / "ladder_runs.csv").open()))
    cells = sorted((r["family"], r["dim"]) for r in runs)
    assert cells == [("low_rank", "3"), ("random_spectrum", "1"), ("random_spectrum", "3")] + [
        ("sparse", "3")
    ]
    # each family's task has the level asked for: the plug-in on 4000 rows finds about 1 nat
    rows = json.loads((tmp_path / "ladder_summary.json").read_text())["rows"]
    assert all(r["mean"] == pytest.approx(1.0, abs=0.1) for r in rows)
    assert [r["family"] for r in rows] == [r[0] for r in cells]
    summary = (tmp_path / "ladder_summary.md").read_text().splitlines()
    assert summary[0].startswith("| family | K | d | true TC | setting |")
    assert summary[2].startswith("| low_rank | 2 | 3 | 1 | plugin | 1 |")
    with pytest.raises(SystemExit):
        ladder.main([*argv, "--family", "banded"])


def test_accuracy_ladder_reads_files_without_a_family_column(tmp_path):
    ladder = _script("accuracy_ladder")
    path = tmp_path / "ladder_runs.csv"
    old_fields = ["setting", "views", "dim", "true_tc", "seed", "estimate", "seconds"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(old_fields)
        writer.writerow(["plugin", 2, 2, 1.0, 0, 0.98, 0.01])
    assert ladder._done(path) == {("equicorrelated", "plugin", 2, 2, 1.0, 0)}
    argv = ["--tcs", "1", "--views", "2", "--dims", "2", "--steps", "5", "--n-samples", "500"]
    argv += ["--settings", "plugin", "--no-plot", "--out", str(tmp_path)]
    # equicorrelated rows only: the file keeps its columns, the run already there is not redone
    assert ladder.main([*argv, "--seeds", "2"]) == 0
    assert next(csv.reader(path.open())) == old_fields
    assert [r["seed"] for r in csv.DictReader(path.open())] == ["0", "1"]
    assert "family" not in (tmp_path / "ladder_targets.md").read_text()
    # rows of another family: the file gains the column, its older rows read "equicorrelated"
    assert ladder.main([*argv, "--seeds", "1", "--family", "sparse,equicorrelated"]) == 0
    runs = list(csv.DictReader(path.open()))
    assert [(r["family"], r["seed"], r["estimate"]) for r in runs][:2] == [
        ("equicorrelated", "0", "0.98"),
        ("equicorrelated", "1", runs[1]["estimate"]),
    ]
    assert [r["family"] for r in runs[2:]] == ["sparse"]
    rows = ladder.summarize(path)
    assert [(r["family"], r["seeds"]) for r in rows] == [("equicorrelated", 2), ("sparse", 1)]
    summary = (tmp_path / "ladder_summary.md").read_text()
    assert "| equicorrelated | 2 | 2 | 1 | plugin | 2 |" in summary
    columns = ladder.format_columns(rows, [(2, 2, 1.0)]).splitlines()
    assert columns[0] == "| family | setting | K=2, d=2, 1 | s/run |"
    assert [line.split(" | ")[0] for line in columns[2:]] == ["| equicorrelated", "| sparse"]


def test_scaling_smoke(tmp_path):
    argv = ["--batches", "64,128", "--views", "2,3", "--views-batch", "64", "--repeats", "1"]
    assert _script("scaling").main([*argv, "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "scaling.json").read_text())
    assert len(meta["rows"]) == 4 and all(r["peak_mib"] > 0 for r in meta["rows"])
    assert (tmp_path / "scaling.png").stat().st_size > 0


@pytest.mark.parametrize("batch, views", [(2, 2), (7, 3), (64, 8)])
def test_shifted_sampler_never_pairs_a_row_with_itself(batch, views):
    index = shifted_product_indices(batch, views, 3, generator=torch.Generator().manual_seed(0))
    assert index.shape == (views, 3 * batch)
    for k in range(views):
        for j in range(3):  # each view of each negative is a permutation of the batch
            assert sorted(index[k, j * batch : (j + 1) * batch].tolist()) == list(range(batch))
        for other in range(k):
            assert bool((index[k] != index[other]).all())
    with pytest.raises(ValueError, match="batch_size >= num_views"):
        shifted_product_indices(2, 3)


def test_heldout_plugin_is_close_to_the_truth():
    ladder = _script("accuracy_ladder")
    task = gaussian_task_with_tc(1.0, (2, 2))
    values = [ladder.heldout_plugin(task.sample(5000, seed=s), seed=s) for s in range(3)]
    assert np.mean(values) == pytest.approx(1.0, abs=0.05)
    # Fitted on one split and averaged on the other: independent views read about 0 or less.
    independent = gaussian_task_with_tc(0.0, (3, 3)).sample(5000, seed=0)
    assert -0.03 < ladder.heldout_plugin(independent, seed=0) < 0.01


def test_accuracy_ladder_runs_in_worker_processes(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy_ladder.py"
    argv = ["--tcs", "1", "--views", "2", "--dims", "2", "--seeds", "2", "--steps", "5"]
    argv += ["--n-samples", "200", "--settings", "dv,plugin_heldout", "--workers", "2"]
    subprocess.run(
        [sys.executable, str(script), *argv, "--no-plot", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    rows = list(csv.DictReader((tmp_path / "ladder_runs.csv").open()))
    assert sorted((r["setting"], r["seed"]) for r in rows) == [
        ("dv", "0"),
        ("dv", "1"),
        ("plugin_heldout", "0"),
        ("plugin_heldout", "1"),
    ]
    assert "held-out plug-in" in (tmp_path / "ladder_targets.md").read_text()


def test_derive_thorough_applies_the_rule_of_thorough_estimates(tmp_path):
    ladder = _script("accuracy_ladder")
    path = tmp_path / "ladder_runs.csv"
    runs = [  # setting, K, d, level, seed, estimate, seconds
        ("dv", 2, 5, 4.0, 0, 3.9, 10),  # two views at >= 1.5 nats: no alternative
        ("dv", 2, 5, 1.0, 0, 0.9, 10),  # below 1.5 nats: weight decay, the larger
        ("dv_wd", 2, 5, 1.0, 0, 0.95, 20),
        ("dv_tree_wd", 2, 5, 1.0, 0, 0.99, 20),  # not the alternative here: ignored
        ("dv", 3, 5, 4.0, 0, 3.6, 10),  # K >= 3 at >= 1.5 nats: tree + decay, the larger
        ("dv_tree_wd", 3, 5, 4.0, 0, 3.9, 20),
        ("dv_wd", 3, 5, 4.0, 0, 3.95, 20),  # not the alternative here: ignored
        ("dv_tree", 3, 5, 4.0, 0, 3.97, 20),  # nor is the tree without decay
        ("dv", 3, 5, 4.0, 1, 3.8, 10),
        ("dv_tree_wd", 3, 5, 4.0, 1, 3.7, 20),
        ("dv", 4, 5, 4.0, 0, 3.5, 10),  # the alternative's row is missing: skipped
        ("dv_tree", 4, 5, 4.0, 0, 3.9, 20),
    ]
    old_fields = [f for f in ladder.FIELDS if f != "family"]  # a file made before --family
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(old_fields)
        writer.writerows(runs)
    assert ladder.derive_thorough(path) == 4
    assert next(csv.reader(path.open())) == old_fields  # appended in the file's own columns
    assert ladder.derive_thorough(path) == 0  # nothing new the second time
    thorough = {
        (int(r["views"]), float(r["true_tc"]), int(r["seed"])): (
            float(r["estimate"]),
            float(r["seconds"]),
        )
        for r in csv.DictReader(path.open())
        if r["setting"] == "dv_thorough"
    }
    assert thorough == {
        (2, 4.0, 0): (3.9, 10),
        (2, 1.0, 0): (0.95, 30),
        (3, 4.0, 0): (3.9, 30),
        (3, 4.0, 1): (3.8, 30),
    }
    assert ladder.main(["--summarize", "--no-plot", "--out", str(tmp_path)]) == 0
    targets = (tmp_path / "ladder_targets.md").read_text()
    head = (
        "| K | d | true TC | dv_thorough mean ± std | rel. error | dv rel. error "
        "| dv_wd rel. error | dv_tree_wd rel. error |"
    )
    assert targets.startswith(head)


def test_product_grad_benchmark_compares_both_gradients_and_restores_the_setting(
    tmp_path, monkeypatch
):
    import mdmest.estimation.training as training

    bench = _script("product_grad")
    # 256 product rows a step (one negative) against 8: the gradient comes from a draw.
    monkeypatch.setattr(training, "PRODUCT_GRAD_ROWS", 8)
    monkeypatch.setattr(
        bench, "TASKS", {"tiny": (lambda: gaussian_task_with_tc(3.0, (2, 2)), 1000, 20)}
    )
    full, drawn = bench.run("tiny", 0, None), bench.run("tiny", 0, 8)
    assert training.PRODUCT_GRAD_ROWS == 8  # restored after each run
    assert full["truth"] == drawn["truth"] == pytest.approx(3.0)
    assert np.isfinite(full["value"]) and np.isfinite(drawn["value"])
    assert (full["grad_rows"], drawn["grad_rows"]) == (None, 8)
