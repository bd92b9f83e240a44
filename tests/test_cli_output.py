"""What the commands write: ``--out`` through links, never over a device or a folder, a folder that
cannot be written named before the work; ``--json`` / ``--out -`` on stdout; warnings as one line
and inside every JSON; progress bars on a terminal only; ``mdmest train``'s last line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import mdmest
from mdmest.cli import main

TINY_DATA = [
    "--data-option", "n_train=16", "--data-option", "n_valid=8", "--data-option", "n_test=8",
    "--data-option", "text_dim=6", "--data-option", "length_range=[2, 4]",
]  # fmt: skip
TINY_MODEL = ["--model-option", "hidden_dim=4", "--model-option", "num_layers=1"]


def status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.fixture()
def views(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    path = tmp_path / "views.npz"
    np.savez(path, a=x, b=x + 0.5 * rng.normal(size=(120, 2)))
    return path


@pytest.fixture()
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the output was checked")

    monkeypatch.setattr(torch.optim, "Adam", refuse)  # the critic's optimiser: training
    monkeypatch.setattr(torch.optim, "AdamW", refuse)


QUICK = ["--steps", "5", "--no-refit", "--no-progress"]


def one_error_line(captured, prog="mdmest estimate") -> str:
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), captured.err
    return lines[0]


# -- --out -----------------------------------------------------------------------------------------
def test_out_writes_through_a_symbolic_link(views, tmp_path, capsys):
    target = tmp_path / "results" / "target.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert status(["estimate", str(views), "--out", str(link), *QUICK]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    record = json.loads(target.read_text())
    assert record["mdmest_version"] == mdmest.__version__
    assert isinstance(record["warnings"], list)
    assert record["views"] == ["a", "b"]
    # No temporary file left beside the link or the target.
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.json"]


@pytest.mark.parametrize("device", ["/dev/null", "/dev/stdout"])
def test_out_refuses_a_device(views, device, capsys, no_training):
    before = os.stat("/dev/null").st_mode
    assert status(["estimate", str(views), "--out", device, *QUICK]) == 2
    line = one_error_line(capsys.readouterr())
    assert f"--out {device}" in line
    assert "refusing to replace" in line or "cannot write" in line
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.stat("/dev/null").st_mode == before


def test_out_refuses_a_directory_and_a_link_to_one(views, tmp_path, capsys, no_training):
    (tmp_path / "folder").mkdir()
    (tmp_path / "to_folder").symlink_to(tmp_path / "folder")
    for out in (tmp_path / "folder", tmp_path / "to_folder"):
        assert status(["estimate", str(views), "--out", str(out), *QUICK]) == 2
        assert "is a directory" in one_error_line(capsys.readouterr())
    assert list((tmp_path / "folder").iterdir()) == []


def test_out_under_a_file_is_one_line(views, tmp_path, capsys, no_training):
    (tmp_path / "a_file").write_text("keep")
    assert status(["estimate", str(views), "--out", str(tmp_path / "a_file/x.json"), *QUICK]) == 2
    assert "is not a directory" in one_error_line(capsys.readouterr())
    assert (tmp_path / "a_file").read_text() == "keep"


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made unwritable for this process: ``chattr +i`` (stops root too), else a
    ``chmod`` that only a non-root user obeys; skips where neither works."""
    try:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        immutable = done.returncode == 0
    except FileNotFoundError:
        immutable = False
    if not immutable:
        if os.geteuid() == 0:
            pytest.skip("root ignores permission bits and chattr +i is not available here")
        folder.chmod(0o555)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_a_read_only_folder_is_one_line_before_any_work(views, tmp_path, capsys, no_training):
    folder = tmp_path / "locked"
    folder.mkdir()
    with read_only(folder):
        assert status(["estimate", str(views), "--out", str(folder / "r.json"), *QUICK]) == 2
        assert "cannot write in" in one_error_line(capsys.readouterr())
        # A results folder below it, for mdmest gaussian: also named before any training.
        out = folder / "figures"
        assert status(["gaussian", "--quick", "--no-plot", "--out", str(out)]) == 2
        assert "cannot write in" in one_error_line(capsys.readouterr(), "mdmest gaussian")
    assert list(folder.iterdir()) == []


# -- --json and warnings ---------------------------------------------------------------------------
@pytest.mark.parametrize("flag", [["--json"], ["--out", "-"]])
def test_json_on_stdout_carries_the_warnings_and_the_version(views, flag, capsys):
    # 5 steps on 120 rows: the estimator warns (the critic has not learned); each warning is one
    # line on stderr and an entry of the JSON.
    assert status(["estimate", str(views), *flag, *QUICK]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["mdmest_version"] == mdmest.__version__
    assert record["value"] == pytest.approx(record["value"])
    warned = [w for w in captured.err.splitlines() if w.startswith("mdmest estimate: warning: ")]
    assert warned, captured.err
    assert [w["message"] for w in record["warnings"]] == [
        w.removeprefix("mdmest estimate: warning: ") for w in warned
    ]
    # The text report went to stderr; no line of stderr is a file path or a source line.
    assert "estimate over views" in captured.err
    assert ".py:" not in captured.err and "  result = " not in captured.err


def test_warnings_are_one_line_without_a_path(views, capsys):
    assert status(["estimate", str(views), *QUICK]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("mdmest estimate: warning: ") for line in err), err


def test_estimate_reports_the_chosen_candidate_and_every_candidates_values(views, tmp_path, capsys):
    """``chosen`` and the candidates' validation and test values reach the text and the JSON."""
    out = tmp_path / "r.json"
    assert status(["estimate", str(views), "--out", str(out), *QUICK]) == 0
    text = capsys.readouterr().out
    record = json.loads(out.read_text())
    chosen = record["chosen"]
    assert chosen in record["candidates"] and "critic" in record["candidates"]
    assert set(record["candidates"][chosen]) == {
        "validation",
        "validation_stderr",
        "test",
        "test_stderr",
        "seconds",
        "start",
        "start_covariance",
    }
    assert record["value"] == record["candidates"][chosen]["test"]
    # The seconds are printed as seconds, after the values in the measure's unit.
    seconds = record["candidates"]["critic"]["seconds"]
    assert f"nats ({seconds:.1f} s)" in text and "seconds" not in text
    assert f"chosen on the validation rows: {chosen}" in text
    assert f"candidate {chosen}: validation " in text and "(reported)" in text
    # The start is no value in nats: never printed as one ("started from a mixture" may be).
    assert re.search(r"\bstart\b", text) is None, text


def test_estimate_names_the_mixture_a_critic_started_from(capsys):
    import numpy as np

    from mdmest.cli.estimate import _describe
    from mdmest.estimation import CandidateValue, EstimateResult

    result = EstimateResult(1.0, 0.05, np.zeros(3), None, n_train=1200, n_test=400)
    result.candidates = {
        "critic": CandidateValue(0.9, 0.1, 1.0, 0.05, seconds=2.0, start=4),
        "deeper": CandidateValue(0.8, 0.1, 0.9, 0.05, seconds=3.0),
        "extended": CandidateValue(0.7, 0.1, 0.8, 0.05, start=8, start_covariance="block"),
    }
    args = type("Args", (), {"measure": "dv"})()
    _describe(result, args, ["a", "b"], None)
    lines = capsys.readouterr().out.splitlines()
    critic = next(line for line in lines if "candidate critic" in line)
    deeper = next(line for line in lines if "candidate deeper" in line)
    assert "(2.0 s), started from a mixture of 4 Gaussians  (reported)" in critic
    assert "mixture" not in deeper and "start" not in deeper
    extended = next(line for line in lines if "candidate extended" in line)
    assert "started from a mixture of 8 Gaussians (the views independent within each)" in extended
    assert "independent" not in critic


# -- progress --------------------------------------------------------------------------------------
GAUSS = ["gaussian", "--grid", "0.5", "--measures", "dv", "--seeds", "1", "--steps", "3",
         "--n-samples", "300", "--no-plot"]  # fmt: skip


def test_no_progress_bar_in_a_log_and_one_line_per_stage(tmp_path, capsys):
    assert status([*GAUSS, "--out", str(tmp_path / "g")]) == 0  # stderr is not a terminal here
    err = capsys.readouterr().err
    assert "\r" not in err
    stages = [line for line in err.splitlines() if not line.startswith("mdmest gaussian: warn")]
    assert stages == ["mdmest gaussian: training 1 critic (3 steps each) in 1 process"], err


def test_progress_forces_the_bar(tmp_path, capsys):
    assert status([*GAUSS, "--out", str(tmp_path / "g"), "--progress"]) == 0
    assert "gaussian: " in capsys.readouterr().err  # tqdm's bar, described "gaussian"


def test_gaussian_json_and_summary_file_carry_the_version(tmp_path, capsys):
    assert status([*GAUSS, "--out", str(tmp_path / "g"), "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["mdmest_version"] == mdmest.__version__ and "warnings" in printed
    assert printed["summary"][0]["x"] == 0.5
    written = json.loads((tmp_path / "g" / "gaussian_summary.json").read_text())
    assert written["mdmest_version"] == mdmest.__version__ and "warnings" in written


# -- mdmest train's last line ----------------------------------------------------------------------
@pytest.mark.slow
def test_train_prints_the_checkpoint_it_wrote_last(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--model", "ef_lstm", "--penalty", "wasserstein", "--data", "synthetic:mosi",
            "--epochs", "1", "--max-steps-per-epoch", "1", *TINY_DATA, *TINY_MODEL]  # fmt: skip
    assert status(argv) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == str(Path("runs") / "ef_lstm-wasserstein-seed0" / "best.pt")
    assert (tmp_path / last).is_file()
    # ... which is what mdmest evaluate takes.
    assert status(["evaluate", "--checkpoint", last]) == 0
    report = json.loads(
        (tmp_path / "runs/ef_lstm-wasserstein-seed0/evaluation_best_test.json").read_text()
    )
    assert report["mdmest_version"] == mdmest.__version__ and "warnings" in report


def test_train_resume_without_a_run_is_one_line(tmp_path, capsys):
    argv = ["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--resume",
            "--out", str(tmp_path / "none")]  # fmt: skip
    assert status(argv) == 2
    assert "nothing to continue" in one_error_line(capsys.readouterr(), "mdmest train")
