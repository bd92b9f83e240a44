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


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


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
    assert "dv estimate over views ['text', 'audio']" in capsys.readouterr().out


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


def test_estimate_bad_files(tmp_path):
    np.savez(tmp_path / "views.npz", a=np.zeros((4, 1)))
    with pytest.raises(SystemExit, match="has no array 'b'"):
        main(["estimate", str(tmp_path / "views.npz"), "--keys", "a", "b"])
    with pytest.raises(SystemExit, match="no such file"):
        main(["estimate", str(tmp_path / "missing.npz")])
    with pytest.raises(SystemExit, match="need at least 2 views"):
        main(["estimate", str(tmp_path / "views.npz")])


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
    ).value
    assert record["value"] == pytest.approx(decayed)
    assert decayed != pytest.approx(
        mdmest.estimate(views, "dv", decomposition="tree", steps=5, progress=False).value
    )
    assert main([*argv, "--thorough", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["candidates"]) == {"default", "weight_decay"}  # 0.5 nats: below 1.5
    assert record["value"] == max(record["candidates"].values())
