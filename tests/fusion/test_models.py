"""Tests of the recurrent fusion models: shapes, training, padding, gradient paths, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mdmest.fusion.base import FusionModel, FusionOutput
from mdmest.fusion.models import (
    EFLSTM,
    LMF,
    MFN,
    MODEL_REGISTRY,
    TFN,
    MAGBert,
    MAGXLNet,
    MLPFusion,
    MLPLinearFusion,
    build_model,
    default_training,
    model_class,
    model_names,
)

DIMS = {"text_dim": 20, "audio_dim": 7, "video_dim": 5}
NAMES = ("ef_lstm", "tfn", "lmf", "mfn")
ALIGNED_ONLY = ("ef_lstm", "mfn")
# Small widths keep every test to a fraction of a second on a CPU.
SMALL = {
    "ef_lstm": {"hidden_dim": 16, "num_layers": 2},
    "tfn": {"hidden_dims": (16, 8, 8), "text_out": 8, "post_fusion_dim": 16},
    "lmf": {"hidden_dims": (16, 8, 8), "text_out": 8},
    "mfn": {"hidden_dims": (16, 8, 8), "memory_dim": 16},
    "mlp_linear": {"hidden_dim": 8},
}


def make_batch(batch_size: int = 16, steps: int = 9, seed: int = 0, aligned: bool = True) -> dict:
    """Random right-padded batch; padding holds garbage and the label depends on the inputs."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, steps + 1, (batch_size,), generator=generator)
    lengths[0] = steps
    batch: dict = {}
    for modality, dim in zip(("text", "audio", "video"), DIMS.values(), strict=True):
        modality_steps = steps if aligned or modality == "text" else steps + 4
        modality_lengths = lengths if aligned or modality == "text" else lengths + 2
        x = torch.randn(batch_size, modality_steps, dim, generator=generator)
        padding = torch.arange(modality_steps) >= modality_lengths.unsqueeze(1)
        x[padding] = 1e3
        batch[modality] = x
        batch[f"{modality}_lengths"] = modality_lengths.clone()
    text_mean = torch.stack([batch["text"][i, : lengths[i], 0].mean() for i in range(batch_size)])
    audio_mean = torch.stack([batch["audio"][i, : lengths[i], 0].mean() for i in range(batch_size)])
    batch["label"] = (2.0 * text_mean + audio_mean).clamp(-3, 3)
    batch["words"] = [["w"] * int(n) for n in lengths]
    batch["id"] = [f"segment{i}" for i in range(batch_size)]
    return batch


def small_model(name: str) -> FusionModel:
    torch.manual_seed(0)
    return build_model(name, **DIMS, **SMALL[name])


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes_match_representation_dims(name: str) -> None:
    model = small_model(name)
    out = model(make_batch())
    assert isinstance(out, FusionOutput)
    assert out.prediction.shape == (16,)
    assert tuple(z.shape[1] for z in out.representations) == model.representation_dims
    assert all(z.shape[0] == 16 for z in out.representations)


@pytest.mark.parametrize("name", NAMES)
def test_default_mosi_and_mosei_models_run(name: str) -> None:
    for dataset in ("mosi", "mosei"):
        model = build_model(name, 300, 74, 47, dataset=dataset).eval()
        batch = make_batch(batch_size=3, steps=4)
        for modality, dim in (("text", 300), ("audio", 74), ("video", 47)):
            batch[modality] = torch.randn(3, 4, dim)
        out = model(batch)
        assert out.prediction.shape == (3,)
        assert tuple(z.shape[1] for z in out.representations) == model.representation_dims


def test_default_dimensions_follow_mmsa() -> None:
    assert EFLSTM(300, 74, 47).representation_dims == (128, 128, 128)
    assert TFN(300, 74, 47).representation_dims == (32, 32, 128)
    assert LMF(300, 74, 47).representation_dims == (64, 16, 128)
    assert MFN(300, 74, 47).representation_dims == (256, 32, 256)
    assert EFLSTM.from_preset(300, 74, 35, dataset="mosei").representation_dims == (256,) * 3
    assert LMF.from_preset(300, 74, 35, dataset="mosei").factors["text"].shape[0] == 4
    assert EFLSTM.DEFAULT_TRAINING["mosi"] == {
        "batch_size": 32,
        "lr": 1e-3,
        "weight_decay": 5e-3,
        "task_loss": "l1",
    }
    for cls in (EFLSTM, TFN, LMF, MFN):
        assert set(cls.DEFAULT_TRAINING) == set(cls.PRESETS) == {"mosi", "mosei"}


@pytest.mark.parametrize("name", NAMES)
def test_training_lowers_the_loss(name: str) -> None:
    model = small_model(name)
    batch = make_batch(batch_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(batch).prediction, batch["label"])

    model.eval()
    with torch.no_grad():
        before = loss().item()
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.5 * before


@pytest.mark.parametrize("name", NAMES)
def test_padding_content_does_not_change_the_output(name: str) -> None:
    model = small_model(name).eval()
    batch = make_batch(aligned=name in ALIGNED_ONLY)
    other = dict(batch)
    for modality in ("text", "audio", "video"):
        x = batch[modality].clone()
        padding = torch.arange(x.shape[1]) >= batch[f"{modality}_lengths"].unsqueeze(1)
        x[padding] = torch.randn(int(padding.sum()), x.shape[-1]) * 50 - 7
        other[modality] = x
    with torch.no_grad():
        first, second = model(batch), model(other)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_a_sequence_gives_the_same_output_alone_or_padded_in_a_batch(name: str) -> None:
    model = small_model(name).eval()
    batch = make_batch()
    row = 1
    length = int(batch["text_lengths"][row])
    alone = {
        key: (value[row : row + 1, :length] if value.dim() == 3 else value[row : row + 1])
        for key, value in batch.items()
        if isinstance(value, torch.Tensor)
    }
    with torch.no_grad():
        together, single = model(batch), model(alone)
    for a, b in zip(together, single, strict=True):
        torch.testing.assert_close(a[row : row + 1], b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_penalty_gradient_reaches_parameters_that_drive_the_prediction(name: str) -> None:
    model = small_model(name)
    out = model(make_batch())
    out.prediction.sum().backward(retain_graph=True)
    drives_prediction = {
        key for key, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    for z in out.representations:
        model.zero_grad()
        z.pow(2).sum().backward(retain_graph=True)
        reached = {
            key
            for key, p in model.named_parameters()
            if p.grad is not None and p.grad.abs().sum() > 0
        }
        assert reached & drives_prediction


@pytest.mark.parametrize("name", ("ef_lstm", "mfn"))
def test_recurrent_representations_are_bounded(name: str) -> None:
    model = small_model(name)
    batch = make_batch()
    for modality in ("text", "audio", "video"):
        batch[modality] = batch[modality] * 1e3
    assert all(z.abs().max() <= 1.0 for z in model(batch).representations)


def test_tfn_output_range() -> None:
    model = build_model("tfn", **DIMS, **SMALL["tfn"], output_range=(-3.0, 3.0))
    assert model(make_batch()).prediction.abs().max() < 3.0
    with pytest.raises(ValueError, match="output_range"):
        TFN(**DIMS, output_range=(1.0, -1.0))


@pytest.mark.parametrize("name", ("tfn", "lmf"))
def test_late_fusion_models_accept_unaligned_sequences(name: str) -> None:
    out = small_model(name)(make_batch(aligned=False))
    assert out.prediction.shape == (16,)


@pytest.mark.parametrize("name", ALIGNED_ONLY)
def test_aligned_models_reject_unaligned_sequences(name: str) -> None:
    with pytest.raises(ValueError, match="aligned"):
        small_model(name)(make_batch(aligned=False))
    batch = make_batch()
    batch["audio_lengths"] = batch["audio_lengths"].clone()
    batch["audio_lengths"][1] -= 1
    with pytest.raises(ValueError, match="audio_lengths differs"):
        small_model(name)(batch)


@pytest.mark.parametrize("name", NAMES)
def test_bad_batches_raise_clear_errors(name: str) -> None:
    model = small_model(name)
    batch = make_batch()
    with pytest.raises(ValueError, match="batch\\['audio'\\] has 8 features"):
        model({**batch, "audio": torch.randn(16, 9, 8)})
    with pytest.raises(ValueError, match="no 'video_lengths'"):
        model({k: v for k, v in batch.items() if k != "video_lengths"})
    with pytest.raises(ValueError, match="shape \\(B, L, d\\)"):
        model({**batch, "text": torch.randn(16, 20)})
    zero = batch["text_lengths"].clone()
    zero[2] = 0
    with pytest.raises(ValueError, match="should lie in \\[1, 9\\]"):
        model({**batch, "text_lengths": zero, "audio_lengths": zero, "video_lengths": zero})


def test_build_model_errors_and_registry() -> None:
    assert set(NAMES) <= set(MODEL_REGISTRY)
    with pytest.raises(ValueError, match="unknown model 'lstm'; valid values are 'ef_lstm'"):
        build_model("lstm", **DIMS)
    with pytest.raises(
        ValueError, match="unknown dataset 'iemocap'; valid values are 'mosei', 'mosi'"
    ):
        build_model("tfn", **DIMS, dataset="iemocap")
    with pytest.raises(TypeError):
        build_model("lmf", **DIMS, hidden=3)
    with pytest.raises(ValueError, match="rank should be positive"):
        build_model("lmf", **DIMS, rank=0)
    with pytest.raises(ValueError, match="dropout should lie in"):
        build_model("ef_lstm", **DIMS, dropout=1.0)
    with pytest.raises(ValueError, match="hidden_dims should hold 3 sizes"):
        build_model("mfn", **DIMS, hidden_dims=(8, 8))
    assert build_model("mfn", **DIMS, dataset="mosei", memory_dim=12).memory_dim == 12


# -- the registry ---------------------------------------------------------------------------------

CLASSES = {
    "ef_lstm": EFLSTM,
    "tfn": TFN,
    "lmf": LMF,
    "mfn": MFN,
    "mag_bert": MAGBert,
    "mag_xlnet": MAGXLNet,
    "mlp": MLPFusion,
    "mlp_linear": MLPLinearFusion,
}
# tanh (EF-LSTM, the MLP) and LSTM hidden states (MFN) are bounded; ReLU/linear sub-network outputs
# (TFN, LMF, the linear MLP) and the MAG models' LayerNorm'd shifts are not.
BOUNDED = {"ef_lstm": True, "mfn": True, "tfn": False, "lmf": False}
BOUNDED |= {"mag_bert": False, "mag_xlnet": False, "mlp": True, "mlp_linear": False}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_model_class_and_its_settings(name: str) -> None:
    cls = model_class(name)
    assert cls is CLASSES[name] and issubclass(cls, FusionModel)
    assert cls.bounded_representations is BOUNDED[name]
    assert cls.reads_words is name.startswith("mag_")
    assert MODEL_REGISTRY[name] == cls.from_preset
    for dataset in ("mosi", "mosei"):
        settings = default_training(name, dataset)
        assert settings == cls.DEFAULT_TRAINING[dataset]
        assert settings["task_loss"] == ("mse" if name.startswith("mag_") else "l1")
        assert {"batch_size", "lr", "weight_decay"} <= set(settings)
        settings["lr"] = 0.0  # a copy
        assert cls.DEFAULT_TRAINING[dataset]["lr"] > 0


def test_registry_names_and_errors() -> None:
    assert model_names() == sorted(CLASSES) == sorted(MODEL_REGISTRY)
    assert FusionModel.bounded_representations is False and FusionModel.reads_words is False
    for call in (lambda: model_class("lstm"), lambda: default_training("lstm")):
        with pytest.raises(ValueError, match="unknown model 'lstm'; valid values are 'ef_lstm'"):
            call()
    with pytest.raises(ValueError, match="unknown dataset 'iemocap'; valid values are"):
        default_training("mfn", "iemocap")


@pytest.mark.parametrize("name", ("tfn", "lmf", "mlp_linear"))
def test_late_fusion_representations_are_unbounded(name: str) -> None:
    model = small_model(name).eval()
    batch = make_batch()
    for modality in ("text", "audio", "video"):
        batch[modality] = batch[modality] * 1e3
    with torch.no_grad():
        assert max(z.abs().max() for z in model(batch).representations) > 1.0


def test_importing_the_models_does_not_import_transformers() -> None:
    code = (
        "import sys, mdmest.fusion.models; "
        "from mdmest.fusion.models import MAGBert, model_class; "
        "assert model_class('mag_xlnet').bounded_representations is False; "
        "assert 'transformers' not in sys.modules, 'transformers was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
