import json

import numpy as np
import pytest

import mdmest
from mdmest.cli import main
from mdmest.tasks import gaussian_task_with_tc


def test_help_lists_the_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "estimate", "gaussian", "train", "evaluate"):
        assert name in out


def test_demo_prints_estimates_beside_the_truth(capsys):
    assert main(["demo", "--samples", "2000", "--steps", "30", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Donsker-Varadhan TC" in out and "1.000" in out


def test_estimate_reads_npz_and_writes_json(tmp_path, capsys):
    x, y = gaussian_task_with_tc(1.0, (2, 2)).sample(3000, seed=0)
    np.savez(tmp_path / "views.npz", text=x, audio=y, unused=np.zeros(3))
    out = tmp_path / "result.json"
    argv = ["estimate", str(tmp_path / "views.npz"), "--keys", "text", "audio", "--steps", "300"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    record = json.loads(out.read_text())
    assert record["views"] == ["text", "audio"] and record["dims"] == [2, 2]
    assert 0.6 < record["value"] < 1.2
    assert 0 < record["stderr"] < 0.2
    assert (record["n_train"], record["n_validation"], record["n_test"]) == (1800, 600, 600)
    # The critics' per-view maps, or the Gaussian-copula bound's own copula where it is chosen.
    assert record["transform"] in ("per_view", "whitened_copula")
    assert record["options"]["transform"] == "auto"
    assert record["train_bound"] > 0
    out = capsys.readouterr().out
    assert f"dv estimate over views ['text', 'audio']: {record['value']:.4f} ± " in out
    assert f"rows: 1800 training, 600 validation, 600 test; transform: {record['transform']}" in out


def test_estimate_reads_one_npy_per_view(tmp_path):
    x, y = gaussian_task_with_tc(0.5, (1, 1)).sample(1000, seed=0)
    np.save(tmp_path / "a.npy", x[:, 0])
    np.save(tmp_path / "b.npy", y)
    assert (
        main(
            [
                "estimate",
                str(tmp_path / "a.npy"),
                str(tmp_path / "b.npy"),
                "--steps",
                "5",
                "--measure",
                "f",
                "--divergence",
                "js",
                "--no-progress",
            ]
        )
        == 0
    )


def test_estimate_negatives_option(tmp_path, capsys):
    x, y = gaussian_task_with_tc(0.5, (1, 1)).sample(500, seed=0)
    np.savez(tmp_path / "views.npz", a=x, b=y)
    out = tmp_path / "result.json"
    argv = ["estimate", str(tmp_path / "views.npz"), "--steps", "5", "--no-progress"]
    assert main([*argv, "--negatives", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["negatives"] == 2
    assert main([*argv, "--negatives", "auto", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["options"]["negatives"] == "auto"
    with pytest.raises(SystemExit):
        main([*argv, "--negatives", "lots"])
    assert "expected an int or \"auto\", got 'lots'" in capsys.readouterr().err


def test_estimate_decomposition_option(tmp_path):
    views = gaussian_task_with_tc(0.5, (1, 2, 1)).sample(500, seed=0)
    np.savez(tmp_path / "views.npz", a=views[0], b=views[1], c=views[2])
    out = tmp_path / "result.json"
    argv = ["estimate", str(tmp_path / "views.npz"), "--steps", "5", "--no-progress"]
    assert main([*argv, "--decomposition", "chain", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["decomposition"] == "chain"
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["decomposition"] is None
    tree = [*argv, "--decomposition", "tree", "--weight-decay", "0.3", "--out", str(out)]
    assert main(tree) == 0
    record = json.loads(out.read_text())
    assert record["options"]["weight_decay"] == 0.3
    decayed = mdmest.estimate(
        views, "dv", decomposition="tree", weight_decay=0.3, steps=5, progress=False
    )
    assert record["value"] == pytest.approx(decayed.value)
    plain = mdmest.estimate(views, "dv", decomposition="tree", steps=5, progress=False)
    # The trained critics differ (the value may be a closed-form bound common to both).
    assert decayed.candidates["critic"].test != pytest.approx(plain.candidates["critic"].test)
    assert main([*argv, "--thorough", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    # 0.5 nats: below 1.5, so weight decay (the bounds that need no training want 100 rows in
    # each of the validation half and the test part, more than these few rows give).
    assert {"critic", "weight_decay"} <= set(record["candidates"])
    validation = {k: v["validation"] for k, v in record["candidates"].items()}
    assert validation[record["chosen"]] == max(validation.values())
    assert record["value"] == record["candidates"][record["chosen"]]["test"]


def exit_status(argv) -> int:
    """``main``'s exit status: its return value, or the code of the SystemExit it raised."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def test_estimate_reads_integer_and_1d_arrays_as_floats(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=200)
    np.savez(tmp_path / "views.npz", a=x, b=(x + rng.integers(0, 2, size=(200, 3)).T).T)
    out = tmp_path / "result.json"
    argv = ["estimate", str(tmp_path / "views.npz"), "--steps", "2", "--no-progress"]
    assert exit_status([*argv, "--transform", "none", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["dims"] == [1, 3] and record["transform"] is None
    assert np.isfinite(record["value"])
    assert "transform: none" in capsys.readouterr().out
