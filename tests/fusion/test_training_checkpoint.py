"""Tests of checkpoint reading: a file that is not a checkpoint is named in one clear sentence."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mdmest.fusion.data import load_dataset
from mdmest.fusion.training import (
    CHECKPOINT_VERSION,
    CheckpointError,
    TrainConfig,
    Trainer,
    build_model,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

EXPECTED = (
    "is not an mdmest fusion checkpoint: expected a best.pt or last.pt written by mdmest train"
)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    dataset = load_dataset(
        "synthetic:mosi", n_train=16, n_valid=8, n_test=8, text_dim=6, length_range=(3, 5)
    )
    spec = {"name": "ef_lstm", "text_dim": 6, "audio_dim": 74, "video_dim": 47, "hidden_dim": 4}
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(epochs=1, batch_size=8, penalty="dv", progress=False)
    Trainer(build_model(**spec), dataset, config, out_dir=out, model_spec=spec).fit()
    return (out / "last.pt").read_bytes()


class Opaque:
    """A class that a weights-only load refuses to build."""


def write_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def write_npz(path):
    with open(path, "wb") as stream:
        np.savez(stream, weights=np.zeros(3))


def write_npy(path):
    with open(path, "wb") as stream:
        np.save(stream, np.zeros(3))


BAD_FILES = {
    "an empty file": lambda path: path.write_bytes(b""),
    "a text file": lambda path: path.write_text("epoch,loss\n1,0.5\n"),
    "binary data that torch.load cannot read": write_random_bytes,
    "a NumPy .npz archive": write_npz,
    "a NumPy .npy array": write_npy,
    "a torch file holding a Tensor": lambda path: torch.save(torch.zeros(2), path),
    "a torch file holding a dict with keys ['bias', 'weight']": lambda path: torch.save(
        {"weight": torch.zeros(2), "bias": torch.zeros(1)}, path
    ),
    "a pickle of objects other than tensors and plain containers": lambda path: torch.save(
        {"critic": Opaque()}, path
    ),
    "a fusion checkpoint without the entries ['epoch',": lambda path: torch.save(
        {"format": "mdmest-fusion-checkpoint", "version": 1}, path
    ),
}


@pytest.mark.parametrize("found", list(BAD_FILES))
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, found):
    path = tmp_path / "notacheckpoint"
    BAD_FILES[found](path)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert message.startswith(f"{str(path)!r} {EXPECTED}, found {found}")
    assert "\n" not in message


def test_a_truncated_checkpoint_is_named(tmp_path, checkpoint_bytes):
    path = tmp_path / "last.pt"
    path.write_bytes(checkpoint_bytes[: len(checkpoint_bytes) // 2])
    with pytest.raises(CheckpointError, match="found a truncated or damaged zip archive"):
        read_checkpoint(path)


def test_a_folder_is_not_a_checkpoint_and_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(CheckpointError, match="found a directory"):
        read_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_a_newer_checkpoint_version_is_refused(tmp_path, checkpoint_bytes):
    path = tmp_path / "last.pt"
    path.write_bytes(checkpoint_bytes)
    checkpoint = read_checkpoint(path)
    assert checkpoint["version"] == CHECKPOINT_VERSION
    save_checkpoint(path, {**checkpoint, "version": CHECKPOINT_VERSION + 1})
    with pytest.raises(
        CheckpointError, match="has checkpoint version 2; this mdmest reads up to 1"
    ):
        read_checkpoint(path)


def test_an_older_wasserstein_checkpoint_keeps_its_normalisation(tmp_path, checkpoint_bytes):
    path = tmp_path / "last.pt"
    path.write_bytes(checkpoint_bytes)
    checkpoint = read_checkpoint(path)
    # Written before the trainer chose the normalisation per model: no "normalize" recorded.
    legacy = {**checkpoint["config"], "penalty": "wasserstein", "measure_kwargs": {"negatives": 2}}
    save_checkpoint(path, {**checkpoint, "config": legacy})
    assert read_checkpoint(path)["config"]["measure_kwargs"] == {"normalize": False, "negatives": 2}
    recorded = {**legacy, "measure_kwargs": {"normalize": True}}
    save_checkpoint(path, {**checkpoint, "config": recorded})
    assert read_checkpoint(path)["config"]["measure_kwargs"] == {"normalize": True}


def test_evaluate_names_a_bad_checkpoint_without_a_traceback(tmp_path, capsys):
    from mdmest.cli import main

    path = tmp_path / "notacheckpoint"
    path.write_text("hello")
    assert main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{EXPECTED}, found a text file" in err and "Traceback" not in err


def test_the_random_state_round_trips():
    state = rng_state()
    first = (torch.rand(3), np.random.random(3), random.random())  # noqa: NPY002
    set_rng_state(state)
    again = (torch.rand(3), np.random.random(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]
