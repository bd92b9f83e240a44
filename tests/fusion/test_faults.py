"""Faults, with real processes: a kill during a checkpoint write, a kill mid-epoch then resume, umask.

Every test runs the library in a child Python process (CPU, one thread, tiny sizes) and kills it
with SIGKILL where a crash would hurt most, so what is checked is what a user sees after a real
crash, not a simulation inside the test process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mdmest.fusion.training.checkpoint import CheckpointError, read_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and umask are POSIX-only")

REPO = Path(__file__).resolve().parents[2]
TINY_DATA = [
    "--data-option", "n_train=32", "--data-option", "n_valid=16", "--data-option", "n_test=16",
    "--data-option", "text_dim=12", "--data-option", "length_range=[3, 6]",
]  # fmt: skip
TINY_MODEL = ["--model-option", "hidden_dim=8", "--model-option", "num_layers=1"]


def train_argv(out: Path, *extra: str) -> list[str]:
    return [
        "train", "--model", "ef_lstm", "--penalty", "dv", "--weight", "0.1",
        "--data", "synthetic:mosi", "--batch-size", "8", "--epochs", "3", "--out", str(out),
        "--no-progress", *TINY_DATA, *TINY_MODEL, *extra,
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def with_umask(command: list[str], umask: int | None) -> list[str]:
    """``command`` run through ``sh`` with the given umask (no preexec_fn: it is unsafe with
    threads in the parent, and torch starts some)."""
    if umask is None:
        return command
    return ["sh", "-c", f'umask {umask:03o} && exec "$0" "$@"', *command]


def start(script: str, *args: str, cwd: Path, umask: int | None = None) -> subprocess.Popen:
    """Run ``script`` (Python source) in a child process with ``args`` as sys.argv[1:]."""
    return subprocess.Popen(
        with_umask([sys.executable, "-c", textwrap.dedent(script), *args], umask),
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen, prefix: str, timeout: float = 60.0) -> str:
    """Read the child's stdout until a line starting with ``prefix``; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            raise AssertionError(
                f"child exited ({process.returncode}) before {prefix!r}:\n{process.stderr.read()}"
            )
        if line.startswith(prefix):
            return line.strip()
    process.kill()
    raise AssertionError(f"no {prefix!r} from the child within {timeout} s")


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    process.stdout.close()
    process.stderr.close()


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "mdmest.cli", *argv],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


# -- a. SIGKILL while a checkpoint is being written ----------------------------------------------

# The child writes checkpoints of generation 0, 1, 2, ... with the library's writer
# (save_checkpoint: a temporary file beside the target, fsync, os.replace). Each holds a ~16 MB
# tensor filled with its generation. With SLOW=1, torch.save's bytes reach the file in small
# chunks with pauses (a slow disk); once 5 MB of generation 1 are on disk the child says MIDWRITE
# and stalls there, so that the parent's kill lands inside the write for certain.
CHECKPOINT_WRITER = """
    import io, sys, time
    import torch
    from mdmest.fusion.training import checkpoint as ckpt

    path, slow = sys.argv[1], sys.argv[2] == "1"
    real_save = torch.save
    generation = 0

    def slow_save(obj, stream, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        for start in range(0, len(data), 1 << 20):
            stream.write(data[start : start + (1 << 20)])
            stream.flush()
            if generation >= 1 and start == 4 << 20:
                print("MIDWRITE", generation, flush=True)
                time.sleep(600)  # hold the write open: the parent kills the child here
            time.sleep(0.05)

    if slow:
        torch.save = slow_save
    while True:
        state = {key: None for key in ckpt.REQUIRED_KEYS}
        state.update(format=ckpt.CHECKPOINT_FORMAT, version=ckpt.CHECKPOINT_VERSION,
                     epoch=generation, model_state={"w": torch.full((4_000_000,), float(generation))})
        ckpt.save_checkpoint(path, state)
        print("SAVED", generation, flush=True)
        generation += 1
"""


def _check_survivor(folder: Path, target: Path, last_saved: int) -> int:
    """The target loads and holds one whole generation; leftovers are hidden .tmp files."""
    checkpoint = read_checkpoint(target)
    generation = checkpoint["epoch"]
    assert generation >= last_saved
    weights = checkpoint["model_state"]["w"]
    assert weights.shape == (4_000_000,)
    assert bool((weights == float(generation)).all())
    for leftover in folder.iterdir():
        if leftover == target:
            continue
        # A temporary file of the interrupted write: hidden, named after the target, never
        # matched by *.pt, and not a loadable checkpoint itself.
        assert leftover.name.startswith(f".{target.name}.") and leftover.name.endswith(".tmp")
        assert leftover.suffix != ".pt"
    assert sorted(folder.glob("*.pt")) == [target]
    return generation


def test_sigkill_in_the_middle_of_a_checkpoint_write_leaves_the_previous_one(tmp_path):
    target = tmp_path / "last.pt"
    child = start(CHECKPOINT_WRITER, str(target), "1", cwd=tmp_path)
    try:
        wait_for_line(child, "SAVED 0")
        wait_for_line(child, "MIDWRITE 1")
    finally:
        kill(child)
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1, leftovers  # the half-written generation 1
    assert leftovers[0].stat().st_size == 5 << 20  # 5 of its ~16 MB were written
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        read_checkpoint(leftovers[0])
    assert _check_survivor(tmp_path, target, last_saved=0) == 0


def test_sigkill_at_random_moments_of_a_checkpoint_loop_never_breaks_the_file(tmp_path):
    """No slowing down: kills at random times land before, inside or after writes alike."""
    rng = random.Random(0)
    for trial in range(3):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        target = folder / "last.pt"
        child = start(CHECKPOINT_WRITER, str(target), "0", cwd=folder)
        try:
            wait_for_line(child, "SAVED 0")
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            kill(child)
        _check_survivor(folder, target, last_saved=0)


# -- b. SIGKILL mid-epoch, then resume: the same result as an uninterrupted run -----------------

# `python -m mdmest.cli train` with one change that leaves the numbers alone: it reports each
# training step and each checkpoint write, and stalls (to be killed) at the point named by its
# first argument:
# - "mid-epoch": after the first step of epoch 2, i.e. after last.pt of epoch 1 and after an
#   optimiser step that is not on disk;
# - "between-best-and-last": after best.pt of epoch 2 is written and before last.pt of epoch 2,
#   the one moment when the two files disagree (best.pt is ahead of last.pt).
INTERRUPTED_TRAIN = """
    import runpy, sys, time
    from mdmest.fusion.training.callbacks import ModelCheckpoint
    from mdmest.fusion.training.trainer import Trainer

    mode = sys.argv[1]
    real_step, real_save = Trainer.train_step, ModelCheckpoint.save

    def step(self, batch):
        losses = real_step(self, batch)
        print("STEP", self.epoch + 1, self.global_step, flush=True)
        if mode == "mid-epoch" and self.epoch + 1 == 2:
            print("STALL", flush=True)
            time.sleep(600)
        return losses

    def save(self, trainer, name):
        real_save(self, trainer, name)
        print("SAVED", name, trainer.epoch, flush=True)
        if mode == "between-best-and-last" and name == "best.pt" and trainer.epoch == 2:
            print("STALL", flush=True)
            time.sleep(600)

    Trainer.train_step, ModelCheckpoint.save = step, save
    sys.argv = ["mdmest", *sys.argv[2:]]
    runpy.run_module("mdmest.cli", run_name="__main__")
"""


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("straight")
    run_cli(train_argv(folder / "run"), cwd=folder)
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    # The "between-best-and-last" kill needs epoch 2 to improve on epoch 1 (best.pt rewritten).
    values = [epoch["valid"][metrics["select_on"]] for epoch in metrics["epochs"]]
    assert metrics["select_on"] == "mae" and values[1] < values[0], values
    return folder / "run"


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["mid-epoch", "between-best-and-last"])
def test_a_run_killed_and_resumed_matches_an_uninterrupted_run(
    tmp_path, uninterrupted_run, kill_at
):
    straight, crashed = uninterrupted_run, tmp_path / "crashed"
    child = start(INTERRUPTED_TRAIN, kill_at, *train_argv(crashed), cwd=tmp_path)
    try:
        wait_for_line(child, "STALL", timeout=120)
    finally:
        kill(child)
    last = read_checkpoint(crashed / "last.pt")
    assert last["epoch"] == 1  # the kill came after epoch 1 was saved, inside epoch 2
    assert last["global_step"] == 4  # 32 rows / batch 8
    assert read_checkpoint(crashed / "best.pt")["epoch"] == (2 if kill_at != "mid-epoch" else 1)
    assert json.loads((crashed / "metrics.json").read_text())["test"] is None

    run_cli(train_argv(crashed, "--resume"), cwd=tmp_path)

    expected = json.loads((straight / "metrics.json").read_text())
    resumed = json.loads((crashed / "metrics.json").read_text())
    assert resumed["test"] == expected["test"]  # bit-identical floats, through JSON
    assert resumed["best_epoch"] == expected["best_epoch"]
    assert resumed["best_valid"] == expected["best_valid"]

    def without_time(epochs):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]

    assert without_time(resumed["epochs"]) == without_time(expected["epochs"])
    for name in ("best.pt", "last.pt"):
        a, b = read_checkpoint(straight / name), read_checkpoint(crashed / name)
        assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
        for part in ("model_state", "measure_state"):
            assert a[part].keys() == b[part].keys()
            for key in a[part]:
                assert torch.equal(a[part][key], b[part][key]), f"{name} {part} {key}"


# -- c. files the library writes get the user's umask --------------------------------------------

# One child process (one interpreter start-up) writes every kind of file, through the API and
# through the command line (mdmest.cli.main in-process: train, evaluate, estimate --out).
WRITE_LIBRARY_FILES = """
    import json, sys
    from pathlib import Path
    import numpy as np
    from mdmest.cli import main
    from mdmest.fusion.data import make_synthetic, write_dataset
    from mdmest.fusion.training import save_checkpoint, write_json
    from mdmest.io import atomic_write_text

    out, views, train_argv = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    dataset = make_synthetic("mosi", n_train=4, n_valid=2, n_test=2, text_dim=8, seed=0)
    write_dataset(dataset, out / "api" / "data" / "mmsa.pkl", "mmsa_aligned")
    write_dataset(dataset, out / "api" / "data" / "misa", "misa")
    save_checkpoint(out / "api" / "state.pt", {"w": [1, 2]})
    write_json(out / "api" / "payload.json", {"a": 1})
    atomic_write_text(out / "api" / "notes.txt", "text")
    assert main(train_argv) == 0
    assert main(["evaluate", "--checkpoint", str(out / "run" / "best.pt")]) == 0
    estimate = ["estimate", views, "--steps", "2", "--no-progress"]
    assert main([*estimate, "--out", str(out / "estimate.json")]) == 0
"""


def _modes(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"),
    [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)],
    ids=["umask022", "umask077"],
)
def test_written_files_get_the_permissions_of_the_umask(tmp_path, umask, file_mode, dir_mode):
    out = tmp_path / "out"
    views = tmp_path / "views.npz"  # written by the test, not by the library: outside out/
    rng = np.random.default_rng(0)
    np.savez(views, a=rng.normal(size=(64, 2)), b=rng.normal(size=(64, 2)))
    argv = json.dumps([*train_argv(out / "run"), "--epochs", "1"])
    child = start(WRITE_LIBRARY_FILES, str(out), str(views), argv, cwd=tmp_path, umask=umask)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err

    modes = _modes(out)
    expected = {
        "api/data/mmsa.pkl", "api/data/misa/train.pkl", "api/data/misa/dev.pkl",
        "api/data/misa/test.pkl", "api/state.pt", "api/payload.json", "api/notes.txt",
        "run/best.pt", "run/last.pt", "run/metrics.json", "run/critic_scores_test.csv",
        "run/evaluation_best_test.json", "estimate.json",
    }  # fmt: skip
    files = {name for name in modes if (out / name).is_file()}
    assert expected <= files, expected - files
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (file_mode if name in files else dir_mode)
    }
    assert not wrong, f"umask {umask:03o}: expected files {file_mode:o}, folders {dir_mode:o}"
    assert not [name for name in files if name.endswith(".tmp")]
