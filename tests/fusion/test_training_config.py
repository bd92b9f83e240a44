"""Tests of the training configuration: model presets, the device check, the Wasserstein rule."""

from __future__ import annotations

import pytest
import torch

from mdmest.fusion.data import load_dataset
from mdmest.fusion.models import EFLSTM, default_training
from mdmest.fusion.training import PENALTIES, TrainConfig, Trainer, check_device

TINY_MODEL = {"hidden_dim": 8, "num_layers": 1}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(
        "synthetic:mosi", n_train=16, n_valid=8, n_test=8, text_dim=6, length_range=(3, 5)
    )


def cli_config(model: str, preset: str) -> TrainConfig:
    """What ``mdmest train --model MODEL --preset PRESET`` built before ``TrainConfig.for_model``
    (mdmest/fusion/cli_train.py, with every optional flag left out)."""
    defaults = default_training(model, preset)
    return TrainConfig(
        epochs=int(defaults.get("epochs", 40)),
        batch_size=int(defaults.get("batch_size", 32)),
        lr=float(defaults.get("lr", 1e-3)),
        weight_decay=float(defaults.get("weight_decay", 0.0)),
        task_loss="mse" if model in ("mag_bert", "mag_xlnet") else "l1",
        warmup_fraction=float(defaults.get("warmup_fraction", 0.1)),
    )


@pytest.mark.parametrize(
    ("preset", "batch_size", "lr", "weight_decay"),
    [("mosi", 32, 1e-3, 5e-3), ("mosei", 128, 5e-3, 1e-4)],
)
def test_for_model_matches_the_command_line_defaults(preset, batch_size, lr, weight_decay):
    config = TrainConfig.for_model("ef_lstm", preset)
    assert config == cli_config("ef_lstm", preset)
    assert (config.batch_size, config.lr, config.weight_decay) == (batch_size, lr, weight_decay)
    assert (config.epochs, config.task_loss, config.warmup_fraction) == (40, "l1", 0.1)
    assert type(config.batch_size) is int and type(config.lr) is float


def test_for_model_of_a_mag_model_uses_its_recipe():
    config = TrainConfig.for_model("mag_bert")
    assert config == cli_config("mag_bert", "mosi")
    assert config.task_loss == "mse" and config.lr == pytest.approx(2e-5)


def test_for_model_overrides_replace_the_preset_and_none_is_ignored():
    config = TrainConfig.for_model(
        "ef_lstm", "mosei", lr=0.5, epochs=3, penalty="dv", task_loss="mse", seed=7
    )
    assert (config.lr, config.epochs, config.penalty, config.task_loss) == (0.5, 3, "dv", "mse")
    assert config.seed == 7 and config.batch_size == 128
    # A command line passes its optional flags straight through: None keeps the preset.
    flags = {"epochs": None, "batch_size": None, "lr": None, "weight_decay": None}
    assert TrainConfig.for_model("ef_lstm", "mosei", task_loss=None, **flags) == cli_config(
        "ef_lstm", "mosei"
    )


def test_for_model_rejects_unknown_names():
    with pytest.raises(TypeError, match="unknown TrainConfig fields \\['learning_rate'\\]"):
        TrainConfig.for_model("ef_lstm", learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown dataset preset 'imdb'; valid values are"):
        TrainConfig.for_model("ef_lstm", "imdb")
    with pytest.raises(ValueError, match="'bert_lstm'"):
        TrainConfig.for_model("bert_lstm")
    with pytest.raises(ValueError, match="must be positive"):
        TrainConfig.for_model("ef_lstm", lr=-1.0)


def test_choice_errors_use_one_phrasing():
    with pytest.raises(ValueError, match="unknown penalty 'mine'; valid values are 'none', 'dv'"):
        TrainConfig(penalty="mine")
    assert PENALTIES == ("none", "dv", "f", "wasserstein")


def test_an_invalid_device_string_is_rejected():
    with pytest.raises(ValueError, match="device 'gpu' is not a valid torch device"):
        TrainConfig(device="gpu")
    assert check_device("cpu") == torch.device("cpu")


def test_an_unavailable_device_is_rejected_before_training(dataset, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = EFLSTM(*dataset.dims, **TINY_MODEL)
    message = (
        r"device 'cuda' is not available on this machine \(torch.cuda.is_available\(\) is False\)"
    )
    with pytest.raises(ValueError, match=message):
        Trainer(model, dataset, TrainConfig(device="cuda", progress=False))
    with pytest.raises(ValueError, match="device 'cuda:1' is not available"):
        check_device("cuda:1")


def test_a_missing_gpu_index_is_rejected(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:3' .* \(torch.cuda.device_count\(\) is 1\)"):
        check_device("cuda:3")
    assert check_device("cuda:0") == torch.device("cuda", 0)


class UnboundedEFLSTM(EFLSTM):
    """EF-LSTM declaring unbounded representations, as TFN, LMF and MAG do."""

    bounded_representations = False


def wasserstein_trainer(dataset, model_class, **measure_kwargs) -> tuple[Trainer, TrainConfig]:
    config = TrainConfig(
        epochs=1,
        batch_size=8,
        penalty="wasserstein",
        measure_kwargs=measure_kwargs,
        progress=False,
    )
    return Trainer(model_class(*dataset.dims, **TINY_MODEL), dataset, config), config


def test_wasserstein_normalises_models_with_unbounded_representations(dataset):
    trainer, config = wasserstein_trainer(dataset, UnboundedEFLSTM)
    assert trainer.measure.normalize is True
    # The effective options are recorded (checkpoint and metrics.json store trainer.config) ...
    assert trainer.config.measure_kwargs == {"normalize": True}
    assert trainer.state_dict()["config"]["measure_kwargs"] == {"normalize": True}
    # ... without changing the caller's configuration.
    assert config.measure_kwargs == {}


def test_wasserstein_keeps_bounded_representations_as_they_are(dataset):
    trainer, _ = wasserstein_trainer(dataset, EFLSTM)
    assert EFLSTM.bounded_representations is True
    assert trainer.measure.normalize is False
    assert trainer.config.measure_kwargs == {"normalize": False}


def test_an_explicit_normalize_is_respected(dataset):
    trainer, _ = wasserstein_trainer(dataset, UnboundedEFLSTM, normalize=False)
    assert trainer.measure.normalize is False
    assert trainer.config.measure_kwargs == {"normalize": False}
    trainer, _ = wasserstein_trainer(dataset, EFLSTM, normalize=True)
    assert trainer.measure.normalize is True


def test_the_normalisation_rule_applies_to_wasserstein_only():
    unbounded = UnboundedEFLSTM(6, 74, 47, **TINY_MODEL)
    assert TrainConfig(penalty="none", measure_kwargs={}).effective_measure_kwargs(unbounded) == {}
    for penalty in ("dv", "f"):  # the paper's objective for the Trainer, nothing about scale
        config = TrainConfig(penalty=penalty, measure_kwargs={})
        assert config.effective_measure_kwargs(unbounded) == {"critic_objective": penalty}
    config = TrainConfig(penalty="wasserstein", measure_kwargs={"negatives": 4})
    assert config.effective_measure_kwargs(unbounded) == {"negatives": 4, "normalize": True}
