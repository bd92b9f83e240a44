"""mdmest.fusion.reproduce: the run cache resumes, statistics match scipy, verdicts, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

from mdmest.cli import main
from mdmest.fusion.reproduce import GridSpec, RunCache, RunConfig, reproduce, run_grid, train_run
from mdmest.fusion.reproduce._analysis import _claim_from, select_runs
from mdmest.fusion.reproduce._stats import (
    agreement_test,
    bootstrap_ci,
    holm,
    paired_test,
    verdict,
    wilcoxon_p,
)


def tiny_grid(seeds=range(5)) -> list[RunConfig]:
    return GridSpec(
        data="breast_cancer", models=("mlp",), seeds=tuple(seeds), weights=(0.1, 1.0), epochs=1
    ).runs()


class Interrupted(RuntimeError):
    pass


def test_grid_has_one_run_per_cell_and_stable_keys():
    runs = tiny_grid()
    # 5 seeds x (none + 3 penalties x 2 weights)
    assert len(runs) == 5 * 7
    assert len({r.key() for r in runs}) == len(runs)
    assert runs[0].key() == RunConfig(**runs[0].to_dict()).key()
    assert (
        RunConfig("d", "m", "dv", 0.1, 0).key() != RunConfig("d", "m", "dv", 0.1, 0, epochs=3).key()
    )


def test_model_options_reach_the_model_and_its_key_only():
    # The key of a run on the preset is the one runs had before model options existed (this run's
    # file is in the breast-cancer cache that docs/results/reproduce_breast_cancer was made from).
    preset = RunConfig(
        "breast_cancer", "mlp", "wasserstein", 1.0, 3, epochs=40, patience=8,
        measure_kwargs={"normalize": True},
    )  # fmt: skip
    assert preset.key() == "0078a4fa09df3204" and "model_kwargs" not in preset.to_dict()
    grid = GridSpec("planted:1.0", ("mlp", "lmf"), seeds=tuple(range(5)), weights=(0.1,))
    grid.model_kwargs = {"mlp": {"hidden_dim": 4}}
    runs = grid.runs()
    assert {r.model for r in runs if r.model_kwargs} == {"mlp"}
    changed = next(r for r in runs if r.model_kwargs)
    assert RunConfig(**changed.to_dict()) == changed
    assert changed.key() != RunConfig(**{**changed.to_dict(), "model_kwargs": {}}).key()
    record = train_run(
        RunConfig(
            "planted:1.0", "mlp", "none", 0.0, 0, epochs=1, model_kwargs={"hidden_dim": 4},
            data_options={"n_train": 16, "n_valid": 8, "n_test": 8},
        )
    )  # fmt: skip
    assert record["config"]["model_kwargs"] == {"hidden_dim": 4}


def test_an_interrupted_grid_resumes_without_training_twice(tmp_path):
    runs = tiny_grid()
    cache = RunCache(tmp_path / "runs")
    trained: list[str] = []

    def fake(config: RunConfig) -> dict:
        if len(trained) == 9:
            raise Interrupted("killed mid-grid")
        trained.append(config.key())
        return {"config": config.to_dict(), "seconds": 0.0}

    with pytest.raises(Interrupted):
        run_grid(runs, cache, train=fake, progress=False)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 9
    first = list(trained)
    trained.clear()
    calls: list[str] = []

    def resume(config: RunConfig) -> dict:
        calls.append(config.key())
        return {"config": config.to_dict(), "seconds": 0.0}

    records = run_grid(runs, cache, train=resume, progress=False)
    assert not set(calls) & set(first)
    assert sorted(first + calls) == sorted(r.key() for r in runs)
    assert [r["config"] for r in records] == [c.to_dict() for c in runs]
    # A third call trains nothing; a stale file with another config is not trusted.
    calls.clear()
    run_grid(runs, cache, train=resume, progress=False)
    assert calls == []
    cache.path(runs[0]).write_text(json.dumps({"config": {"other": 1}}))
    run_grid(runs, cache, train=resume, progress=False)
    assert calls == [runs[0].key()]


def test_reproduce_end_to_end_on_a_tiny_grid(tmp_path):
    out = tmp_path / "out"
    analysis = reproduce(
        "breast_cancer",
        seeds=range(5),
        weights=(0.1, 1.0),
        epochs=1,
        out=out,
        progress=False,
        log=lambda _: None,
    )
    assert set(analysis["overall"]) == {"C1", "C2", "C3", "C4"}
    assert analysis["overall"]["C2"] == "not run"
    for name in ("report.md", "analysis.json", "runs.json", "fig2_modality_drop.png"):
        assert (out / name).is_file()
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == 35 and len(list((out / "runs").glob("*.json"))) == 35
    report = (out / "report.md").read_text()
    assert "## Claims" in report and "Acc-2 (non0)" in report and "Tab. 3" in report
    # Weight chosen on validation: one selected run per (model, penalty, seed, fold).
    assert len(select_runs(runs)) == 5 * 4


def test_train_run_records_what_the_report_needs():
    record = train_run(
        RunConfig(
            "planted:1.0",
            "ef_lstm",
            "dv",
            0.1,
            0,
            epochs=1,
            data_options={"n_train": 16, "n_valid": 8, "n_test": 8},
        )
    )
    assert len(record["scores"]) == len(record["test_ids"]) == 8
    assert set(record["drop"]) == {"audio+video", "audio", "video"}
    assert len(record["text_only_predictions"]) == 8


def test_paired_statistics_match_scipy():
    treated = np.array([0.71, 0.74, 0.69, 0.80, 0.77, 0.73, 0.75, 0.72])
    base = np.array([0.70, 0.70, 0.70, 0.72, 0.74, 0.70, 0.71, 0.73])
    result = paired_test(treated, base)
    d = treated - base
    assert result.diff == pytest.approx(d.mean())
    assert result.p == pytest.approx(scipy.stats.wilcoxon(d).pvalue)
    assert result.n == 8 and result.std == pytest.approx(treated.std(ddof=1))
    expected = scipy.stats.bootstrap(
        (d,), np.mean, n_resamples=9999, method="percentile", random_state=np.random.default_rng(0)
    ).confidence_interval
    assert (result.ci_low, result.ci_high) == pytest.approx((expected.low, expected.high))
    assert result.ci_low < d.mean() < result.ci_high
    # Exact small case: 6 positive differences give p = 2 / 2**6.
    assert wilcoxon_p([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    assert wilcoxon_p([0, 0, 0]) == 1.0
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_agreement_test_matches_mann_whitney():
    scores = [5.0, 4.0, 3.0, 2.0, 1.0]
    agree = [True, True, True, False, False]
    result = agreement_test(scores, agree)
    assert result["auc"] == 1.0
    assert result["p"] == pytest.approx(
        scipy.stats.mannwhitneyu([5, 4, 3], [2, 1], alternative="greater").pvalue
    )
    assert result["p"] == pytest.approx(0.1)
    assert np.isnan(agreement_test([1.0, 2.0], [True, True])["auc"])


def test_verdicts_and_claims():
    assert verdict(0.02, 0.01, higher_is_better=True) == "better"
    assert verdict(0.02, 0.01, higher_is_better=False) == "worse"  # e.g. MAE went up
    assert verdict(-0.02, 0.01, higher_is_better=False) == "better"
    assert verdict(0.02, 0.05) == "no detectable difference"
    assert verdict(0.0, 0.001) == "no detectable difference"
    assert verdict(0.02, float("nan")) == "no detectable difference"
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert _claim_from(["better", "no detectable difference"]) == "held"
    assert _claim_from(["better", "worse"]) == "not held"
    assert _claim_from(["no detectable difference"] * 3) == "not detectable"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "breast_cancer", "--models", "mlp,bogus"], "unknown model"),
        (["--data", "breast_cancer", "--seeds", "3"], "at least 5"),
        (["--data", "/no/such/file.pkl"], "no dataset at"),
        (["--data", "mosi229:/no/such.pkl"], "no MOSI segments"),
        (["--data", "planted:abc"], "noise level"),
        (["--data", "breast_cancer", "--models", "ef_lstm"], "--models mlp"),
        (["--data", "breast_cancer", "--penalties", "dv"], "include 'none'"),
        (["--data", "breast_cancer", "--weights", "x"], "weights"),
        (["--data", "breast_cancer", "--device", "gpu"], "not a valid torch device"),
        (["--data", "breast_cancer", "--model-option", "hidden_dim=8"], "MODEL:KEY=VALUE"),
        (["--data", "breast_cancer", "--model-option", "lmf:rank=2"], "not among the models"),
        (["--data", "breast_cancer", "--model-option", "mlp:width=8"], "valid: hidden_dim"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    try:
        status = main(["reproduce", *argv, "--out", str(tmp_path)])
    except SystemExit as exit:  # argparse's own errors exit from the parser
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mdmest reproduce: error:")
    assert message in lines[0]
    assert not list(tmp_path.iterdir())


def test_wasserstein_penalty_standardises_unless_representations_are_declared_bounded():
    from mdmest.fusion.base import FusionModel
    from mdmest.fusion.models import EFLSTM, LMF
    from mdmest.fusion.models.mlp import MLPFusion
    from mdmest.fusion.training import TrainConfig

    config = TrainConfig(penalty="wasserstein")

    class UserModel(FusionModel):  # says nothing about its representations
        pass

    class UserBounded(FusionModel):
        bounded_representations = True

    assert config.effective_measure_kwargs(UserModel()) == {"normalize": True}
    assert config.effective_measure_kwargs(UserBounded()) == {"normalize": False}
    assert config.effective_measure_kwargs(EFLSTM(4, 4, 4, hidden_dim=4, num_layers=1)) == {
        "normalize": False
    }
    assert config.effective_measure_kwargs(LMF.from_preset(4, 4, 4)) == {"normalize": True}
    assert config.effective_measure_kwargs(MLPFusion(4, 4, 4)) == {"normalize": False}
    assert config.effective_measure_kwargs(MLPFusion(4, 4, 4, bounded=False)) == {"normalize": True}
    explicit = TrainConfig(penalty="wasserstein", measure_kwargs={"normalize": False})
    assert explicit.effective_measure_kwargs(UserModel()) == {"normalize": False}


def test_parallel_workers_fill_the_same_cache(tmp_path):
    runs = GridSpec(
        data="breast_cancer",
        models=("mlp",),
        penalties=("none", "dv"),
        seeds=(0, 1),
        weights=(0.1,),
        epochs=1,
    ).runs()
    cache = RunCache(tmp_path)
    records = run_grid(runs, cache, workers=2, progress=False)
    assert [r["config"] for r in records] == [c.to_dict() for c in runs]
    assert all(r["threads"] == 1 for r in records)
    calls = []
    run_grid(runs, cache, train=lambda c: calls.append(c), progress=False)
    assert calls == []


def test_a_standardised_wasserstein_penalty_cannot_be_raised_by_scaling():
    import torch

    from mdmest import make_measure

    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x + 0.5 * torch.randn(64, 3)
    raw = make_measure("wasserstein", [3, 3], normalize=False)
    std = make_measure("wasserstein", [3, 3], normalize=True)
    for measure in (raw, std):
        measure.eval()
    scale = 10.0
    gen = 0
    assert std.estimate(scale * x, scale * y, generator=gen).item() == pytest.approx(
        std.estimate(x, y, generator=gen).item(), rel=1e-4, abs=1e-5
    )
    # The raw W_1 reads the views in their own units: inflating them changes the value.
    assert raw.estimate(scale * x, scale * y, generator=gen).item() > 1.2 * (
        raw.estimate(x, y, generator=gen).item()
    )


def test_mosi229_folds_test_every_segment_once(mosi_folder):
    from mdmest.fusion.reproduce._sources import load_run_data

    spec = f"mosi229:{mosi_folder / 'dev_misa_format.pkl'}"
    tested = []
    for fold in range(5):
        data = load_run_data(spec, seed=3, fold=fold, folds=5, text_features=False)
        ids = {name: set(data[name].ids) for name in ("train", "valid", "test")}
        assert not (ids["train"] & ids["test"]) and not (ids["valid"] & ids["test"])
        assert sum(len(v) for v in ids.values()) == 229
        tested += data["test"].ids
    assert len(tested) == len(set(tested)) == 229


def test_tabular_and_planted_sources():
    from mdmest.fusion.reproduce._sources import load_run_data

    data = load_run_data("breast_cancer", seed=0)
    assert data.dims == (10, 10, 10)
    assert sum(len(data[s]) for s in ("train", "valid", "test")) == 569
    assert set(data["test"].labels.tolist()) == {-1.0, 1.0}
    planted = load_run_data(
        "planted:0.5", seed=1, options={"n_train": 8, "n_valid": 4, "n_test": 4}
    )
    assert planted.dims == (32, 16, 16) and len(planted["train"]) == 8
