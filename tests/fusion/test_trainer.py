"""Tests of the fusion trainer: objective, checkpoints, resume, crash safety, modality drop, scores."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from mdmest.fusion.data import load_dataset, make_loader
from mdmest.fusion.training import (
    Predictions,
    TrainConfig,
    Trainer,
    build_model,
    default_training,
    drop_modalities,
    drop_ratios,
    model_names,
    read_checkpoint,
    seed_everything,
    train,
    write_scores_csv,
)

# Small sizes keep each training run to about a second on one CPU thread.
TINY_MODEL = {"hidden_dim": 8, "num_layers": 1}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(
        "synthetic:mosi", n_train=48, n_valid=24, n_test=24, text_dim=12, length_range=(3, 8)
    )


def make_trainer(dataset, out_dir=None, **config) -> Trainer:
    options = {"epochs": 2, "batch_size": 16, "penalty": "dv", "progress": False, **config}
    spec = {
        "name": "ef_lstm",
        "text_dim": dataset.d_text,
        "audio_dim": dataset.d_audio,
        "video_dim": dataset.d_video,
        **TINY_MODEL,
    }
    seed_everything(options.get("seed", 0))
    return Trainer(
        build_model(**spec), dataset, TrainConfig(**options), out_dir=out_dir, model_spec=spec
    )


def strip_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def test_fit_writes_best_last_and_metrics(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path)
    summary = trainer.fit()

    assert summary["epochs_run"] == 2 and summary["best_epoch"] in (1, 2)
    assert {p.name for p in tmp_path.iterdir()} == {"best.pt", "last.pt", "metrics.json"}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for record in metrics["epochs"]:
        for key in ("train_loss", "task_loss", "penalty", "bound_estimate"):
            assert math.isfinite(record[key]), key
        assert math.isfinite(record["valid"]["mae"]) and 0 <= record["valid"]["acc2_non0"] <= 1
    assert metrics["best_epoch"] == summary["best_epoch"]
    assert set(metrics["test"]) >= {"acc7", "acc2_has0", "acc2_non0", "f1_non0", "mae", "corr"}

    last = read_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2 and last["model_spec"]["name"] == "ef_lstm"
    assert last["data_dims"] == {"text": 12, "audio": 74, "video": 47}
    assert last["measure_state"] is not None and last["critic_optimizer_state"] is not None
    # The DV measure's moving average of E_q[exp T] is part of the saved state.
    assert int(last["measure_state"]["num_updates"]) == 6  # 3 steps per epoch
    assert "running_log_mean_exp" in last["measure_state"]
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == summary["best_epoch"]


def test_the_objective_is_task_loss_plus_weight_times_measure(dataset):
    trainer = make_trainer(dataset, penalty_weight=0.5)
    batch = next(iter(make_loader(dataset["train"], 16)))
    losses = trainer.train_step(batch)
    assert losses["train_loss"] == pytest.approx(losses["task_loss"] + 0.5 * losses["penalty"])


def test_penalty_changes_encoder_gradients_but_not_the_head(dataset):
    batch = next(iter(make_loader(dataset["train"], 16)))
    grads = {}
    for weight in (0.0, 0.5):
        trainer = make_trainer(dataset, penalty_weight=weight)
        trainer.train_step(batch)
        grads[weight] = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
        # The critic learns whatever the weight: it minimises measure(...) on its own.
        assert all(p.grad is not None for p in trainer.measure.critic.parameters())
    # EF-LSTM's representations are read from the first LSTM layer's input weights.
    assert not torch.allclose(grads[0.0]["lstm.weight_ih_l0"], grads[0.5]["lstm.weight_ih_l0"])
    # The output layer does not feed the representations: only the task loss reaches it.
    assert torch.allclose(grads[0.0]["out.weight"], grads[0.5]["out.weight"])


def test_resume_continues_from_last_epoch_and_matches_an_uninterrupted_run(dataset, tmp_path):
    straight = make_trainer(dataset, tmp_path / "straight", epochs=3)
    straight.fit()

    first = make_trainer(dataset, tmp_path / "resumed", epochs=2)
    first.fit()
    # A fresh process would re-seed and re-initialise: the saved state (random state included)
    # must make the rest of the run identical to the uninterrupted one.
    resumed = make_trainer(dataset, tmp_path / "resumed", epochs=3)
    summary = resumed.fit(resume=True)

    assert summary["epochs_run"] == 3
    assert [e["epoch"] for e in resumed.history] == [1, 2, 3]
    assert strip_timings(resumed.history) == strip_timings(straight.history)
    last_straight = read_checkpoint(tmp_path / "straight" / "last.pt")["model_state"]
    last_resumed = read_checkpoint(tmp_path / "resumed" / "last.pt")["model_state"]
    for name, value in last_straight.items():
        assert torch.equal(value, last_resumed[name]), name


def test_resume_of_a_finished_run_trains_no_further(dataset, tmp_path):
    make_trainer(dataset, tmp_path).fit()
    again = make_trainer(dataset, tmp_path)
    assert again.fit(resume=True)["epochs_run"] == 2
    assert len(again.history) == 2


def test_resume_with_another_model_is_refused(dataset, tmp_path):
    make_trainer(dataset, tmp_path, epochs=1).fit()
    other = make_trainer(dataset, tmp_path, epochs=2)
    other.model_spec = {**other.model_spec, "hidden_dim": 4}
    with pytest.raises(ValueError, match="cannot resume"):
        other.fit(resume=True)


def test_crash_while_saving_keeps_the_previous_checkpoint(dataset, tmp_path, monkeypatch):
    make_trainer(dataset, tmp_path, epochs=1).fit()
    before = (tmp_path / "last.pt").read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")  # a half-written file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        make_trainer(dataset, tmp_path, epochs=2).fit(resume=True)
    monkeypatch.undo()

    assert (tmp_path / "last.pt").read_bytes() == before
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "metrics.json"]
    # ... and training can go on from it.
    assert make_trainer(dataset, tmp_path, epochs=2).fit(resume=True)["epochs_run"] == 2


def test_from_checkpoint_rebuilds_model_and_critic(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path)
    trainer.fit()
    rebuilt = Trainer.from_checkpoint(tmp_path / "best.pt", dataset)
    assert rebuilt.evaluate("test") == trainer.evaluate("test")
    np.testing.assert_allclose(
        rebuilt.predict("test").scores, trainer.predict("test").scores, rtol=1e-6
    )


def test_evaluate_with_modality_drop(dataset):
    trainer = make_trainer(dataset, epochs=1)
    trainer.fit()
    full = trainer.predict("test")
    no_text = trainer.predict("test", drop=("text",))
    assert not np.allclose(full.predictions, no_text.predictions)
    metrics = trainer.evaluate("test", drop=("text", "audio"))
    assert set(metrics) == {
        "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "mae", "corr"
    }  # fmt: skip
    ratios = drop_ratios(metrics, trainer.evaluate("test"))
    assert set(ratios) == {"acc2_has0_ratio", "acc2_non0_ratio"}
    assert all(value >= 0 for value in ratios.values())


def test_drop_modalities_zeroes_features_and_names_the_drop():
    batch = {
        "text": torch.ones(2, 3, 4),
        "audio": torch.ones(2, 3, 5),
        "video": torch.ones(2, 3, 6),
        "text_lengths": torch.tensor([3, 2]),
        "words": [["a", "b", "c"], ["d", "e"]],
    }
    dropped = drop_modalities(batch, ["text", "video"])
    assert dropped["drop"] == ("text", "video")
    assert dropped["text"].abs().sum() == 0 and dropped["video"].abs().sum() == 0
    assert torch.equal(dropped["audio"], batch["audio"])
    assert torch.equal(batch["text"], torch.ones(2, 3, 4)), "the input batch is left unchanged"
    # Models that read words (MAG) drop text through batch["drop"].
    words_only = {k: v for k, v in batch.items() if k != "text"}
    assert drop_modalities(words_only, ["text"])["drop"] == ("text",)
    with pytest.raises(ValueError, match="unknown modality 'speech'; valid values are 'text'"):
        drop_modalities(batch, ["speech"])
    with pytest.raises(ValueError, match="no 'text' features"):
        drop_modalities({"audio": torch.ones(1, 1, 1)}, ["text"])


def test_critic_scores_csv_is_sorted_highest_first(dataset, tmp_path):
    trainer = make_trainer(dataset, epochs=1)
    trainer.fit()
    predictions = trainer.predict("test")
    write_scores_csv(predictions, tmp_path / "scores.csv")
    with open(tmp_path / "scores.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["id", "label", "prediction", "critic_score"]
    assert len(rows) == len(dataset["test"])
    scores = [float(row["critic_score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert {row["id"] for row in rows} == set(dataset["test"].ids)


def test_training_without_penalty_has_no_critic(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path, penalty="none", epochs=1)
    trainer.fit()
    assert trainer.measure is None and trainer.critic_optimizer is None
    assert math.isnan(trainer.history[0]["penalty"])
    assert math.isnan(trainer.history[0]["bound_estimate"])
    predictions = trainer.predict("test")
    assert predictions.scores is None
    with pytest.raises(ValueError, match="no critic scores"):
        write_scores_csv(predictions, tmp_path / "scores.csv")


def test_early_stopping_uses_the_validation_split(dataset):
    trainer = make_trainer(dataset, epochs=20, patience=1, lr=1e-6, select_on="acc7")
    summary = trainer.fit()
    assert summary["stopped_early"] and summary["epochs_run"] < 20
    assert summary["best_epoch"] == 1
    assert trainer.history[summary["best_epoch"] - 1]["valid"] == summary["best_valid"]


def test_without_out_dir_the_best_weights_are_kept_in_memory(dataset):
    trainer = train(
        build_model("ef_lstm", dataset.d_text, dataset.d_audio, dataset.d_video, **TINY_MODEL),
        dataset,
        TrainConfig(epochs=3, batch_size=16, penalty="f", progress=False),
    )
    best = trainer.best_epoch
    assert trainer.evaluate("valid") == trainer.history[best - 1]["valid"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("epochs", 0, "epochs"),
        ("lr", -1.0, "lr"),
        ("penalty", "mine", "unknown penalty 'mine'; valid values are 'none', 'dv'"),
        ("task_loss", "huber", "unknown task_loss 'huber'; valid values are 'l1', 'mse'"),
        ("select_on", "loss", "unknown select_on 'loss'; valid values are 'mae'"),
        ("penalty_weight", -0.1, "penalty_weight"),
        ("warmup_fraction", 1.0, "warmup_fraction"),
    ],
)
def test_bad_configuration_is_rejected(option, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{option: value})


def test_unknown_measure_option_is_rejected(dataset):
    with pytest.raises(TypeError):
        make_trainer(dataset, measure_kwargs={"temperature": 2.0})


def test_model_names_and_presets():
    assert {"ef_lstm", "tfn", "lmf", "mfn", "mag_bert", "mag_xlnet"} <= set(model_names())
    with pytest.raises(ValueError, match="unknown model 'bert_lstm'"):
        build_model("bert_lstm", text_dim=1, audio_dim=1, video_dim=1)
    assert default_training("ef_lstm", "mosi")["lr"] == pytest.approx(1e-3)


def test_mag_model_trains_with_adamw_and_warmup(dataset):
    from transformers import AutoTokenizer, BertConfig

    from mdmest.fusion.models.mag import MAGBert, default_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(default_backbone_path())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    seed_everything(0)
    model = MAGBert.from_config(config, tokenizer, dataset.d_video, dataset.d_audio)
    words_only = load_dataset(
        "synthetic:mosi", n_train=16, n_valid=8, n_test=8, text_dim=None, length_range=(3, 6)
    )
    trainer = Trainer(
        model,
        words_only,
        TrainConfig(epochs=2, batch_size=8, lr=1e-3, penalty="wasserstein", progress=False),
    )
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert trainer.optimizer.param_groups[1]["weight_decay"] == 0.0
    # 2 epochs x 2 steps: a one-step warm-up (10%, at least one), then linear decay to 0.
    assert trainer.scheduler is not None
    trainer.fit()
    assert trainer.global_step == 4
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    no_text = trainer.predict("test", drop=("text",))
    assert no_text.predictions.shape == (8,)
    assert isinstance(no_text, Predictions)


@pytest.mark.slow
@pytest.mark.parametrize("penalty", ["dv", "f", "wasserstein"])
def test_penalty_raises_dependency_between_learned_representations(penalty):
    """On data with a strong planted dependency, training with the penalty raises the dependency
    among the learned representations, as measured by a fresh critic before and after."""
    from mdmest import estimate

    data = load_dataset(
        "synthetic:mosi",
        n_train=256,
        n_valid=128,
        n_test=8,
        text_dim=16,
        dependency=0.9,
        length_range=(4, 8),
    )
    # W_1 scales with the views: compare on standardised views.
    measure_kwargs = {"normalize": True} if penalty == "wasserstein" else {}
    trainer = make_trainer(
        data,
        epochs=8,
        batch_size=32,
        penalty=penalty,
        penalty_weight=1.0,
        critic_lr=1e-3,
        patience=100,
        measure_kwargs=measure_kwargs,
    )

    def fresh_estimate() -> float:
        views = [
            torch.cat([train_z, valid_z]).numpy()
            for train_z, valid_z in zip(
                trainer.predict("train").representations, trainer.predict("valid").representations
            )
        ]
        # On the representations as they are (transform=None): with the whitened copula the DV
        # reading is 2.43 both before and after training, i.e. the untrained encoders already carry
        # the planted dependency and the transform reads it fully; what the penalty changes is how
        # plainly the representations show it to a critic of this size.
        result = estimate(
            views, penalty, steps=300, batch_size=64, progress=False, seed=0, transform=None,
            **measure_kwargs,
        )  # fmt: skip
        return float(result.value)

    before = fresh_estimate()
    trainer.fit()
    after = fresh_estimate()
    assert after > before, (before, after)
