"""Every user error of every subcommand: exit status 2, one line ``mdmest <command>: error: ...`` on
stderr, nothing on stdout, no traceback, and no training started."""

from __future__ import annotations

import pickle
import subprocess
import sys

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


def exit_status(argv) -> int:
    """``main``'s exit status: its return value, or the code of the SystemExit it raised."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def write_inputs(folder) -> None:
    """Every file the cases read, in ``folder``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    np.savez(folder / "good.npz", a=x, b=x + rng.normal(size=(60, 2)))
    np.savez(folder / "unequal.npz", a=np.zeros((3000, 2)), b=np.zeros((3001, 2)))
    np.savez(folder / "three_d.npz", a=x, b=x.reshape(60, 2, 1))
    np.savez(folder / "few.npz", a=x[:7], b=x[:7])
    np.savez(folder / "one.npz", a=x)
    np.savez(folder / "none.npz")
    np.savez(folder / "objects.npz", a=np.array([1, "x", None] * 20, dtype=object), b=x)
    np.savez(folder / "strings.npz", a=np.array(["x"] * 60), b=x)
    np.savez(folder / "nan.npz", a=np.where(np.arange(60)[:, None] == 5, np.nan, x), b=x)
    (folder / "corrupt.npz").write_bytes(b"not a zip archive at all" * 10)
    (folder / "truncated.npz").write_bytes((folder / "good.npz").read_bytes()[:300])
    (folder / "empty.npz").write_bytes(b"")
    np.save(folder / "a.npy", x)
    np.save(folder / "b.npy", x)
    (folder / "corrupt.npy").write_bytes(b"\x93NUMPY\xff\xff garbage")
    (folder / "text.npy").write_bytes(b"1 2 3\n")
    (folder / "random.pt").write_bytes(rng.bytes(256))
    (folder / "empty.pt").write_bytes(b"")
    (folder / "notes.txt").write_text("not a checkpoint\n")
    (folder / "empty.pkl").write_bytes(b"")
    (folder / "garbage.pkl").write_bytes(b"\x00\x01 not a pickle")
    (folder / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    (folder / "a_file").write_text("x")


# (subcommand arguments, in which {d} is the folder; a piece of the one-line message)
CASES = {
    # -- mdmest estimate -------------------------------------------------------------------------
    "estimate/divergence-jensen": (
        ["estimate", "{d}/good.npz", "--measure", "f", "--divergence", "jensen"],
        "argument --divergence: invalid choice: 'jensen'",
    ),
    "estimate/lipschitz-sn": (
        ["estimate", "{d}/good.npz", "--measure", "wasserstein", "--lipschitz", "sn"],
        "argument --lipschitz: invalid choice: 'sn'",
    ),
    "estimate/transform-rank": (
        ["estimate", "{d}/good.npz", "--transform", "rank"],
        "invalid choice: 'rank'",
    ),
    "estimate/negatives-0": (["estimate", "{d}/good.npz", "--negatives", "0"], "--negatives"),
    "estimate/steps-0": (
        ["estimate", "{d}/good.npz", "--steps", "0"],
        "argument --steps: must be an integer >= 1, got 0",
    ),
    "estimate/steps-text": (["estimate", "{d}/good.npz", "--steps", "many"], "'many'"),
    "estimate/lr-0": (["estimate", "{d}/good.npz", "--lr", "0"], "argument --lr: must be a number"),
    "estimate/weight-decay-nan": (
        ["estimate", "{d}/good.npz", "--weight-decay", "nan"],
        "argument --weight-decay: must be a number >= 0",
    ),
    "estimate/lipschitz-for-dv": (
        ["estimate", "{d}/good.npz", "--measure", "dv", "--lipschitz", "spectral_norm"],
        "--lipschitz applies to --measure wasserstein only, got --measure dv",
    ),
    "estimate/divergence-for-dv": (
        ["estimate", "{d}/good.npz", "--divergence", "js"],
        "--divergence applies to --measure f only, got --measure dv",
    ),
    "estimate/thorough-wasserstein": (
        ["estimate", "{d}/good.npz", "--measure", "wasserstein", "--thorough"],
        "thorough=True needs 'dv', or 'f' with the KL divergence; got 'wasserstein'",
    ),
    "estimate/thorough-weight-decay": (
        ["estimate", "{d}/good.npz", "--thorough", "--weight-decay", "0.3"],
        "thorough=True chooses the decomposition and the weight decay itself",
    ),
    "estimate/copula-wasserstein": (
        ["estimate", "{d}/good.npz", "--measure", "wasserstein", "--transform", "copula"],
        "transform='copula' is valid for 'dv' and 'f' only",
    ),
    "estimate/decomposition-wasserstein": (
        ["estimate", "{d}/good.npz", "--measure", "wasserstein", "--decomposition", "tree"],
        "decomposition needs a KL-type measure",
    ),
    "estimate/auto-negatives-wasserstein": (
        ["estimate", "{d}/good.npz", "--measure", "wasserstein", "--negatives", "auto"],
        "negatives='auto' needs a KL-type measure",
    ),
    "estimate/test-fraction": (
        ["estimate", "{d}/good.npz", "--test-fraction", "1.5"],
        "test_fraction must lie in (0, 1)",
    ),
    "estimate/device-cuda": (["estimate", "{d}/good.npz", "--device", "cuda:7"], "cuda:7"),
    "estimate/device-nonsense": (["estimate", "{d}/good.npz", "--device", "toaster"], "toaster"),
    "estimate/out-in-missing-folder": (
        ["estimate", "{d}/good.npz", "--out", "{d}/no/such/result.json"],
        "no such directory",
    ),
    "estimate/out-is-a-folder": (["estimate", "{d}/good.npz", "--out", "{d}"], "is a directory"),
    "estimate/missing-file": (["estimate", "{d}/missing.npz"], "no such file: {d}/missing.npz"),
    "estimate/corrupt-npz": (["estimate", "{d}/corrupt.npz"], "{d}/corrupt.npz is not a .npz"),
    "estimate/truncated-npz": (["estimate", "{d}/truncated.npz"], "cannot read {d}/truncated.npz"),
    "estimate/empty-file": (["estimate", "{d}/empty.npz"], "{d}/empty.npz is empty"),
    "estimate/empty-archive": (["estimate", "{d}/none.npz"], "{d}/none.npz holds no arrays"),
    "estimate/object-arrays": (
        ["estimate", "{d}/objects.npz"],
        "cannot read array 'a' of {d}/objects.npz: Object arrays cannot be loaded",
    ),
    "estimate/string-arrays": (
        ["estimate", "{d}/strings.npz"],
        "view 1 (a) must hold real numbers, got an array of dtype",
    ),
    "estimate/missing-key": (
        ["estimate", "{d}/good.npz", "--keys", "a", "c"],
        "{d}/good.npz has no array 'c'",
    ),
    "estimate/one-view": (["estimate", "{d}/one.npz"], "need at least 2 views, got 1 (['a'])"),
    "estimate/npz-and-npy": (
        ["estimate", "{d}/good.npz", "{d}/a.npy"],
        "give one .npz file, or one .npy file per view",
    ),
    "estimate/keys-with-npy": (
        ["estimate", "{d}/a.npy", "{d}/b.npy", "--keys", "a", "b"],
        "--keys picks arrays of one .npz",
    ),
    "estimate/corrupt-npy": (["estimate", "{d}/a.npy", "{d}/corrupt.npy"], "cannot read"),
    "estimate/text-as-npy": (
        ["estimate", "{d}/a.npy", "{d}/text.npy"],
        "{d}/text.npy is not a .npy file",
    ),
    "estimate/unequal-rows": (
        ["estimate", "{d}/unequal.npz"],
        "the views must have the same number of rows (paired), got view 1 (a): 3000, "
        "view 2 (b): 3001",
    ),
    "estimate/three-d": (
        ["estimate", "{d}/three_d.npz"],
        "view 2 (b) must be 1-d (n,) or 2-d (n, features), got shape",
    ),
    "estimate/too-few-rows": (
        ["estimate", "{d}/few.npz"],
        "7 rows are too few: with 2 views and test_fraction=0.2, estimate needs at least 17 rows",
    ),
    "estimate/nan": (["estimate", "{d}/nan.npz"], "view 1 (a) contains NaN or Inf values"),
    # -- mdmest demo -----------------------------------------------------------------------------
    "demo/one-view": (["demo", "--dims", "4"], "--dims needs one number per view"),
    "demo/zero-dim": (["demo", "--dims", "4", "0"], "argument --dims: must be an integer >= 1"),
    "demo/negative-tc": (["demo", "--tc", "-1"], "argument --tc: must be a number >= 0"),
    "demo/samples-0": (["demo", "--samples", "0"], "argument --samples"),
    # -- mdmest gaussian -------------------------------------------------------------------------
    "gaussian/unknown-measure": (
        ["gaussian", "--quick", "--measures", "dv,mine"],
        "argument --measures: expected a comma-separated list among dv, f, wasserstein",
    ),
    "gaussian/one-view": (["gaussian", "--quick", "--views", "1"], "views must be >= 2"),
    "gaussian/grid-text": (["gaussian", "--grid", "0.5,high"], "argument --grid"),
    "gaussian/sampler": (["gaussian", "--sampler", "roll"], "argument --sampler: invalid choice"),
    "gaussian/grid-rho-above-1": (
        ["gaussian", "--grid", "1.5", "--quick"],
        "grid: with 2 views each point is a correlation rho in (-1, 1), got 1.5",
    ),
    "gaussian/grid-negative-tc": (
        ["gaussian", "--views", "3", "--grid", "-1", "--quick"],
        "each point is a total correlation in nats, a finite number >= 0, got -1",
    ),
    "gaussian/out-under-a-file": (
        ["gaussian", "--quick", "--out", "{d}/a_file/figures"],
        "{d}/a_file is a file, not a folder",
    ),
    "gaussian/workers-0": (["gaussian", "--workers", "0"], "argument --workers"),
    "estimate/out-dev-null": (
        ["estimate", "{d}/good.npz", "--out", "/dev/null"],
        "--out /dev/null: refusing to replace a device",
    ),
    "estimate/out-under-a-file": (
        ["estimate", "{d}/good.npz", "--out", "{d}/a_file/result.json"],
        "{d}/a_file is not a directory",
    ),
    "estimate/repeated-key": (
        ["estimate", "{d}/good.npz", "--keys", "a", "a"],
        "--keys names 'a' more than once",
    ),
    "estimate/negative-seed": (
        ["estimate", "{d}/good.npz", "--seed", "-1"],
        "argument --seed: must be an integer >= 0, got -1",
    ),
    "estimate/progress-and-no-progress": (
        ["estimate", "{d}/good.npz", "--progress"],
        "argument --no-progress: not allowed with argument --progress",
    ),
    "demo/too-large": (["demo", "--dims", "1000000", "1000000"], "not enough memory"),
    "train/resume-without-run": (
        ["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--resume"],
        "last.pt does not exist; nothing to continue",
    ),
    "train/split-seed-negative": (
        ["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--split-seed", "-2"],
        "argument --split-seed: must be an integer >= 0",
    ),
    "reproduce/negative-first-seed": (
        ["reproduce", "--data", "breast_cancer", "--first-seed", "-3"],
        "argument --first-seed: must be an integer >= 0, got -3",
    ),
    "reproduce/out-is-a-file": (
        ["reproduce", "--data", "breast_cancer", "--seeds", "5", "--out", "{d}/a_file"],
        "--out {d}/a_file is a file",
    ),
    "gaussian/out-is-a-file": (
        ["gaussian", "--quick", "--out", "{d}/a_file"],
        "--out {d}/a_file is a file",
    ),
    # -- mdmest train ----------------------------------------------------------------------------
    "train/unknown-model": (
        ["train", "--model", "bert_lstm", "--data", "synthetic:mosi"],
        "argument --model: invalid choice: 'bert_lstm'",
    ),
    "train/unknown-penalty": (
        ["train", "--model", "ef_lstm", "--penalty", "mine", "--data", "synthetic:mosi"],
        "argument --penalty: invalid choice: 'mine'",
    ),
    "train/negative-weight": (
        ["train", "--model", "ef_lstm", "--weight", "-1", "--data", "synthetic:mosi"],
        "must be a number >= 0",
    ),
    "train/epochs-0": (
        ["train", "--model", "ef_lstm", "--epochs", "0", "--data", "synthetic:mosi"],
        "must be an integer >= 1",
    ),
    "train/data-option-not-a-number": (
        ["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--data-option", "n_train=abc"],
        "n_train must be an int >= 1, got 'abc'",
    ),
    "train/bad-measure-option": (
        ["train", "--model", "ef_lstm", "--measure-option", "3=1", "--data", "synthetic:mosi"],
        "KEY=VALUE",
    ),
    "train/unknown-measure-option": (
        [
            "train",
            "--model",
            "ef_lstm",
            "--penalty",
            "dv",
            "--data",
            "synthetic:mosi",
            "--measure-option",
            "temperature=2",
            *TINY_DATA,
        ],
        "temperature",
    ),  # fmt: skip
    "train/unknown-model-option": (
        [
            "train",
            "--model",
            "ef_lstm",
            "--data",
            "synthetic:mosi",
            "--model-option",
            "wings=2",
            *TINY_DATA,
        ],
        "wings",
    ),  # fmt: skip
    "train/device-cuda": (
        [
            "train",
            "--model",
            "ef_lstm",
            "--data",
            "synthetic:mosi",
            "--device",
            "cuda:7",
            *TINY_DATA,
        ],
        "cuda:7",
    ),  # fmt: skip
    "train/device-nonsense": (
        [
            "train",
            "--model",
            "ef_lstm",
            "--data",
            "synthetic:mosi",
            "--device",
            "toaster",
            *TINY_DATA,
        ],
        "toaster",
    ),  # fmt: skip
    "train/npz-data": (["train", "--model", "ef_lstm", "--data", "{d}/good.npz"], "good.npz"),
    "train/missing-data": (["train", "--model", "ef_lstm", "--data", "{d}/no.pkl"], "no.pkl"),
    "train/empty-pickle": (["train", "--model", "ef_lstm", "--data", "{d}/empty.pkl"], "empty"),
    "train/garbage-pickle": (
        ["train", "--model", "ef_lstm", "--data", "{d}/garbage.pkl"],
        "garbage.pkl",
    ),
    "train/list-pickle": (["train", "--model", "ef_lstm", "--data", "{d}/list.pkl"], "list.pkl"),
    "train/unknown-synthetic": (
        ["train", "--model", "ef_lstm", "--data", "synthetic:imdb"],
        "imdb",
    ),
    "train/backbone-for-lstm": (
        ["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--backbone", "x"],
        "--backbone applies to",
    ),
    "train/out-is-a-file": (
        ["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--out", "{d}/a_file"],
        "is a file",
    ),
    # -- mdmest evaluate -------------------------------------------------------------------------
    "evaluate/missing": (["evaluate", "--checkpoint", "{d}/missing.pt"], "{d}/missing.pt"),
    "evaluate/random-bytes": (["evaluate", "--checkpoint", "{d}/random.pt"], "{d}/random.pt"),
    "evaluate/empty": (["evaluate", "--checkpoint", "{d}/empty.pt"], "{d}/empty.pt"),
    "evaluate/text-file": (["evaluate", "--checkpoint", "{d}/notes.txt"], "{d}/notes.txt"),
    "evaluate/npz": (["evaluate", "--checkpoint", "{d}/good.npz"], "{d}/good.npz"),
    "evaluate/folder": (["evaluate", "--checkpoint", "{d}"], "{d}"),
    "evaluate/unknown-modality": (
        ["evaluate", "--checkpoint", "x.pt", "--drop", "smell"],
        "argument --drop: invalid choice: 'smell'",
    ),
    "evaluate/drop-everything": (
        [
            "evaluate",
            "--checkpoint",
            "x.pt",
            "--drop",
            "text",
            "--drop",
            "audio",
            "--drop",
            "video",
        ],
        "dropping every modality leaves nothing to evaluate",
    ),
    # -- mdmest ----------------------------------------------------------------------------------
    "mdmest/unknown-subcommand": (["frobnicate"], "invalid choice: 'frobnicate'"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    write_inputs(folder)
    return folder


@pytest.fixture()
def no_training(monkeypatch):
    """Any training started by a bad-input case fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started on a bad input")

    monkeypatch.setattr(torch.optim, "Adam", refuse)  # the critic's optimiser: training
    monkeypatch.setattr(torch.optim, "AdamW", refuse)
    from mdmest.fusion.training import Trainer

    monkeypatch.setattr(Trainer, "fit", refuse)


@pytest.mark.parametrize("case", list(CASES))
def test_each_user_error_is_one_line_with_status_2(case, inputs, tmp_path, capsys, no_training):
    arguments, expected = CASES[case]
    argv = [a.format(d=inputs) for a in arguments]
    if argv[0] == "train" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    assert (
        exit_status([*argv, *(["--no-progress"] if argv[0] in ("estimate", "demo") else [])]) == 2
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    # mdmest train may print a note (e.g. which preset it used) before the error
    prog = "mdmest" if case.startswith("mdmest/") else f"mdmest {argv[0]}"
    assert lines and lines[-1].startswith(f"{prog}: error: "), captured.err
    assert len([line for line in lines if "error" in line]) == 1, captured.err
    assert expected.format(d=inputs) in lines[-1]


def test_the_console_script_prints_one_line_and_no_traceback():
    """Through a real process: ``python -m mdmest.cli`` as the ``mdmest`` script runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "mdmest.cli", "demo", "--dims", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "mdmest demo: error: --dims needs one number per view and at least 2 views, got [4]"
    ]


def test_an_error_in_training_keeps_its_traceback(inputs, monkeypatch):
    """Only the checks before training are user errors; a failure once training runs is a bug and
    must reach the user as the exception it is."""

    def broken(*args, **kwargs):
        raise ValueError("a bug in the training loop")

    monkeypatch.setattr(torch.optim, "Adam", broken)  # the critic's optimiser: training
    monkeypatch.setattr(torch.optim, "AdamW", broken)
    with pytest.raises(ValueError, match="a bug in the training loop") as raised:
        main(["estimate", str(inputs / "good.npz"), "--steps", "2", "--no-progress"])
    assert not isinstance(raised.value, mdmest.EstimateInputError)
