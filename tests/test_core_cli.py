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
    assert 0 < record["stderr"] < 0.2
    assert (record["n_train"], record["n_validation"], record["n_test"]) == (1800, 600, 600)
    assert record["transform"] == "whitened_copula" and record["options"]["transform"] == "auto"
    assert record["train_bound"] > 0
    out = capsys.readouterr().out
    assert f"dv estimate over views ['text', 'audio']: {record['value']:.4f} ± " in out
    assert "rows: 1800 training, 600 validation, 600 held-out; transform: whitened_copula" in out


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
    ).value
    assert record["value"] == pytest.approx(decayed)
    assert decayed != pytest.approx(
        mdmest.estimate(views, "dv", decomposition="tree", steps=5, progress=False).value
    )
    assert main([*argv, "--thorough", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["candidates"]) == {"default", "weight_decay"}  # 0.5 nats: below 1.5
    assert record["value"] == max(record["candidates"].values())


# -- user errors of `mdmest estimate`: one line on stderr, exit status 2, before any training --------
def exit_status(argv) -> int:
    """``main``'s exit status: its return value, or the code of the SystemExit it raised."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def _write_inputs(folder):
    """Every file the bad-input cases read, in ``folder``."""
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


ARGPARSE = "argparse"
BAD_INPUTS = {
    # id: (arguments after `estimate`, in which {d} is the folder; a piece of the message)
    "divergence-jensen": (["good.npz", "--measure", "f", "--divergence", "jensen"], ARGPARSE),
    "lipschitz-sn": (["good.npz", "--measure", "wasserstein", "--lipschitz", "sn"], ARGPARSE),
    "transform-rank": (["good.npz", "--transform", "rank"], ARGPARSE),
    "negatives-0": (["good.npz", "--negatives", "0"], ARGPARSE),
    "lipschitz-for-dv": (
        ["good.npz", "--measure", "dv", "--lipschitz", "spectral_norm"],
        "--lipschitz applies to --measure wasserstein only, got --measure dv",
    ),
    "divergence-for-dv": (
        ["good.npz", "--divergence", "js"],
        "--divergence applies to --measure f only, got --measure dv",
    ),
    "thorough-wasserstein": (
        ["good.npz", "--measure", "wasserstein", "--thorough"],
        "thorough=True needs 'dv', or 'f' with the KL divergence; got 'wasserstein'",
    ),
    "thorough-weight-decay": (
        ["good.npz", "--thorough", "--weight-decay", "0.3"],
        "thorough=True chooses the decomposition and the weight decay itself",
    ),
    "copula-wasserstein": (
        ["good.npz", "--measure", "wasserstein", "--transform", "copula"],
        "transform='copula' is valid for 'dv' and 'f' only",
    ),
    "decomposition-wasserstein": (
        ["good.npz", "--measure", "wasserstein", "--decomposition", "tree"],
        "decomposition needs a KL-type measure",
    ),
    "auto-negatives-wasserstein": (
        ["good.npz", "--measure", "wasserstein", "--negatives", "auto"],
        "negatives='auto' needs a KL-type measure",
    ),
    "steps-0": (["good.npz", "--steps", "0"], "steps must be an int >= 1, got 0"),
    "test-fraction": (["good.npz", "--test-fraction", "1.5"], "test_fraction must lie in (0, 1)"),
    "lr-0": (["good.npz", "--lr", "0"], "--lr must be a positive number, got 0.0"),
    "weight-decay-nan": (["good.npz", "--weight-decay", "nan"], "--weight-decay must be a number"),
    "out-in-missing-folder": (
        ["good.npz", "--out", "{d}/no/such/result.json"],
        "no such directory",
    ),
    "missing-file": (["missing.npz"], "no such file: {d}/missing.npz"),
    "corrupt-npz": (["corrupt.npz"], "{d}/corrupt.npz is not a .npz file"),
    "truncated-npz": (["truncated.npz"], "cannot read {d}/truncated.npz: "),
    "empty-file": (["empty.npz"], "{d}/empty.npz is empty"),
    "empty-archive": (["none.npz"], "{d}/none.npz holds no arrays"),
    "object-arrays": (
        ["objects.npz"],
        "cannot read array 'a' of {d}/objects.npz: Object arrays cannot be loaded",
    ),
    "string-arrays": (["strings.npz"], "view 1 (a) must hold real numbers, got an array of dtype"),
    "missing-key": (["good.npz", "--keys", "a", "c"], "{d}/good.npz has no array 'c'"),
    "one-view": (["one.npz"], "need at least 2 views, got 1 (['a'])"),
    "npz-and-npy": (["good.npz", "a.npy"], "give one .npz file, or one .npy file per view"),
    "keys-with-npy": (["a.npy", "b.npy", "--keys", "a", "b"], "--keys picks arrays of one .npz"),
    "corrupt-npy": (["a.npy", "corrupt.npy"], "cannot read {d}/corrupt.npy: "),
    "text-as-npy": (["a.npy", "text.npy"], "{d}/text.npy is not a .npy file"),
    "unequal-rows": (
        ["unequal.npz"],
        "the views must have the same number of rows (paired), got view 1 (a): 3000, "
        "view 2 (b): 3001",
    ),
    "three-d": (["three_d.npz"], "view 2 (b) must be 1-d (n,) or 2-d (n, features), got shape"),
    "too-few-rows": (
        ["few.npz"],
        "7 rows are too few: with 2 views and test_fraction=0.2, estimate needs at least 8 rows",
    ),
    "nan": (["nan.npz"], "view 1 (a) contains NaN or Inf values in 1 rows"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_estimate_names_each_bad_input_in_one_line(case, tmp_path, capsys, monkeypatch):
    def train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(mdmest.estimation, "_train", train)
    _write_inputs(tmp_path)
    arguments, expected = BAD_INPUTS[case]
    arguments = [a.format(d=tmp_path) for a in arguments]
    files = [str(tmp_path / a) if a.endswith((".npz", ".npy")) else a for a in arguments]
    assert exit_status(["estimate", *files, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    if expected == ARGPARSE:
        assert lines[0].startswith("usage: mdmest estimate")
        assert lines[-1].startswith("mdmest estimate: error: argument --")
    else:
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("mdmest estimate: error: ")
        assert expected.format(d=tmp_path) in lines[0]


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


def test_estimate_keeps_the_traceback_of_an_error_in_training(tmp_path, monkeypatch):
    def check(self, step):
        raise ValueError("a bug in the training loop")

    # Called from within the training loop (mdmest.estimation._train), before the first step.
    monkeypatch.setattr(mdmest.estimation._BestOnValidation, "check", check)
    x, y = gaussian_task_with_tc(0.5, (1, 1)).sample(100, seed=0)
    np.savez(tmp_path / "views.npz", a=x, b=y)
    with pytest.raises(ValueError, match="a bug in the training loop"):
        main(["estimate", str(tmp_path / "views.npz"), "--steps", "2", "--no-progress"])
