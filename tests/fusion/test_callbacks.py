"""Tests of the trainer's state object and its callbacks: hooks, logs, early stopping, resume."""

from __future__ import annotations

import ast
import csv
import math
import sys
from pathlib import Path

import pytest
import torch

import mdmest.fusion.training as training
from mdmest.fusion.data import load_dataset
from mdmest.fusion.training import TrainConfig, Trainer, build_model, read_checkpoint
from mdmest.fusion.training.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    TensorBoardLogger,
)
from mdmest.fusion.training.state import TrainerState, seed_everything

SPEC = {"name": "ef_lstm", "hidden_dim": 8, "num_layers": 1}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(
        "synthetic:mosi", n_train=32, n_valid=16, n_test=16, text_dim=8, length_range=(3, 6)
    )


def make_trainer(dataset, out_dir=None, callbacks=(), **config) -> Trainer:
    options = {"epochs": 2, "batch_size": 16, "penalty": "dv", "progress": False, **config}
    spec = {**SPEC, "text_dim": 8, "audio_dim": dataset.d_audio, "video_dim": dataset.d_video}
    seed_everything(0)
    return Trainer(
        build_model(**spec),
        dataset,
        TrainConfig(**options),
        out_dir=out_dir,
        model_spec=spec,
        callbacks=callbacks,
    )


class Recorder(Callback):
    """Writes down every hook call, with the epoch and step the trainer is at."""

    def __init__(self):
        self.calls = []

    def _note(self, hook, trainer):
        self.calls.append((hook, trainer.state.epoch, trainer.state.global_step))

    def on_train_start(self, trainer):
        self._note("train_start", trainer)

    def on_train_epoch_start(self, trainer):
        self._note("epoch_start", trainer)

    def on_train_batch_end(self, trainer, losses):
        assert set(losses) == {"train_loss", "task_loss", "penalty"}
        self._note("batch_end", trainer)

    def on_validation_end(self, trainer):
        assert trainer.state.history[-1]["epoch"] == trainer.state.epoch
        self._note("validation_end", trainer)

    def on_train_epoch_end(self, trainer):
        self._note("epoch_end", trainer)

    def on_train_end(self, trainer):
        assert trainer.state.test_metrics is not None
        self._note("train_end", trainer)


def test_the_hooks_are_called_in_lightnings_order(dataset):
    recorder = Recorder()
    make_trainer(dataset, callbacks=[recorder]).fit()
    epoch = [("epoch_start", 0, 0), ("batch_end", 0, 1), ("batch_end", 0, 2)]
    epoch += [("validation_end", 1, 2), ("epoch_end", 1, 2)]
    second = [("epoch_start", 1, 2), ("batch_end", 1, 3), ("batch_end", 1, 4)]
    second += [("validation_end", 2, 4), ("epoch_end", 2, 4)]
    assert recorder.calls == [("train_start", 0, 0), *epoch, *second, ("train_end", 2, 4)]


def test_a_callback_stops_training_through_the_state(dataset):
    class StopAfterOne(Callback):
        def on_train_epoch_end(self, trainer):
            trainer.state.should_stop = True

    trainer = make_trainer(dataset, epochs=5, callbacks=[StopAfterOne()])
    summary = trainer.fit()
    assert summary["epochs_run"] == 1 and summary["stopped_early"]
    # A later fit starts with should_stop cleared: the callbacks decide again.
    assert trainer.fit()["epochs_run"] == 2


def test_the_defaults_are_added_after_the_given_callbacks(dataset, tmp_path):
    recorder = Recorder()
    trainer = make_trainer(dataset, tmp_path, callbacks=[recorder], progress=True)
    kinds = [type(callback) for callback in trainer.callbacks]
    assert kinds == [Recorder, ProgressBar, EarlyStopping, ModelCheckpoint]
    assert trainer.out_dir == tmp_path and trainer.checkpoint_callback.folder == tmp_path
    # A given EarlyStopping or ModelCheckpoint replaces the default one.
    own = [EarlyStopping(patience=3), ModelCheckpoint(tmp_path)]
    assert make_trainer(dataset, tmp_path, callbacks=own).callbacks == own
    assert make_trainer(dataset).out_dir is None


def test_bad_callbacks_are_named(dataset, tmp_path):
    with pytest.raises(TypeError, match="Callback; got function"):
        make_trainer(dataset, callbacks=[lambda trainer: None])
    with pytest.raises(ValueError, match="out_dir .* and the ModelCheckpoint's folder .* differ"):
        make_trainer(dataset, tmp_path / "a", callbacks=[ModelCheckpoint(tmp_path / "b")])
    with pytest.raises(ValueError, match="patience must be at least 1, got 0"):
        EarlyStopping(patience=0)


def test_early_stopping_with_its_own_patience(dataset):
    # lr so small that acc7 stays put: no epoch after the first improves.
    options = {"epochs": 10, "lr": 1e-9, "select_on": "acc7", "patience": 100}
    trainer = make_trainer(dataset, callbacks=[EarlyStopping(patience=2)], **options)
    summary = trainer.fit()
    assert summary["best_epoch"] == 1 and summary["epochs_run"] == 3 and summary["stopped_early"]


def test_csv_logger_writes_one_row_per_epoch_and_survives_a_resume(dataset, tmp_path):
    path = tmp_path / "logs" / "epochs.csv"
    make_trainer(dataset, tmp_path / "run", callbacks=[CSVLogger(path)], epochs=1).fit()
    resumed = make_trainer(dataset, tmp_path / "run", callbacks=[CSVLogger(path)], epochs=3)
    resumed.fit(resume=True)
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]  # none lost, none repeated
    assert {"train_loss", "task_loss", "penalty", "bound_estimate", "valid_mae"} <= set(rows[0])
    for row, record in zip(rows, resumed.state.history):
        assert float(row["valid_mae"]) == record["valid"]["mae"]
        assert float(row["train_loss"]) == record["train_loss"]


def test_tensorboard_logger_writes_the_epochs_scalars(dataset, tmp_path):
    # tensorboard is in the integrations extra, which CI installs.
    from tensorboard.backend.event_processing import event_accumulator

    trainer = make_trainer(dataset, callbacks=[TensorBoardLogger(tmp_path / "tb")])
    trainer.fit()
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/train_loss", "valid/mae", "valid/bound_estimate", "test/mae"} <= tags
    maes = [(e.step, e.value) for e in events.Scalars("valid/mae")]
    expected = [(r["epoch"], r["valid"]["mae"]) for r in trainer.state.history]
    assert [step for step, _ in maes] == [1, 2]
    assert [value for _, value in maes] == pytest.approx([value for _, value in expected])


def test_tensorboard_logger_without_tensorboard_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ImportError, match="TensorBoardLogger needs the tensorboard package"):
        TensorBoardLogger(tmp_path)


def test_state_dict_is_the_parts_state_dicts(dataset, tmp_path):
    class Counter(Callback):
        def __init__(self):
            self.batches = 0

        def on_train_batch_end(self, trainer, losses):
            self.batches += 1

        def state_dict(self):
            return {"batches": self.batches}

        def load_state_dict(self, state):
            self.batches = state["batches"]

    make_trainer(dataset, tmp_path, callbacks=[Counter()], epochs=1).fit()
    saved = read_checkpoint(tmp_path / "last.pt")
    state = TrainerState.from_state_dict(saved)
    assert state.epoch == 1 and state.global_step == 2 and len(state.history) == 1
    assert saved["callbacks"] == {"Counter": {"batches": 2}}
    counter = Counter()
    resumed = make_trainer(dataset, tmp_path, callbacks=[counter], epochs=2)
    resumed.fit(resume=True)
    assert counter.batches == 4  # 2 restored from last.pt, 2 of epoch 2
    # The trainer's own state_dict round-trips through load_state_dict.
    copy = make_trainer(dataset)
    copy.load_state_dict(resumed.state_dict())
    assert copy.state == resumed.state
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, copy.model.state_dict()[name]), name


def test_resume_without_a_checkpoint_folder_is_refused(dataset):
    with pytest.raises(ValueError, match="resume=True needs an out_dir"):
        make_trainer(dataset).fit(resume=True)


def test_checkpoint_io_imports_nothing_of_the_trainer():
    source = Path(training.checkpoint.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {name for name in imported if name and "fusion" in name}, imported


def test_the_state_records_the_best_epoch_and_nan_never_wins():
    state = TrainerState()
    assert state.record({"epoch": 1, "valid": {"corr": math.nan}}, "corr") is False
    assert state.record({"epoch": 2, "valid": {"corr": 0.2}}, "corr") is True
    assert state.record({"epoch": 3, "valid": {"corr": 0.1}}, "corr") is False
    assert (state.best_epoch, state.best_value, state.epochs_without_improvement) == (2, 0.2, 1)
    assert not state.improved and state.best_valid == {"corr": 0.2}
