"""The paper's fusion models and one registry of builders for all of them.

EF-LSTM, TFN, LMF and MFN live here; MAG-BERT and MAG-XLNet live in :mod:`mdmest.fusion.mag` (which
imports transformers) and are registered here lazily, so naming them is the only way to import it.
Every model takes ``(text_dim, audio_dim, video_dim)`` and MMSA 2.2.1's CMU-MOSI hyperparameters as
defaults; ``build_model(name, ..., dataset="mosei")`` applies the CMU-MOSEI preset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mdmest.fusion.base import FusionModel
from mdmest.fusion.models._common import PresetFusionModel
from mdmest.fusion.models.ef_lstm import EFLSTM
from mdmest.fusion.models.lmf import LMF
from mdmest.fusion.models.mfn import MFN
from mdmest.fusion.models.tfn import TFN

_RECURRENT: dict[str, type[PresetFusionModel]] = {
    "ef_lstm": EFLSTM,
    "tfn": TFN,
    "lmf": LMF,
    "mfn": MFN,
}


def _mag_builder(name: str) -> Callable[..., FusionModel]:
    def build(text_dim, audio_dim, video_dim, dataset="mosi", **overrides):
        from mdmest.fusion import mag

        return getattr(mag, name)(text_dim, audio_dim, video_dim, dataset, **overrides)

    build.__name__ = name
    return build


#: Model name → builder, called as
#: ``builder(text_dim, audio_dim, video_dim, dataset=..., **overrides)``.
MODEL_REGISTRY: dict[str, Callable[..., FusionModel]] = {
    **{name: cls.from_preset for name, cls in _RECURRENT.items()},
    "mag_bert": _mag_builder("build_mag_bert"),
    "mag_xlnet": _mag_builder("build_mag_xlnet"),
}


def model_names() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(MODEL_REGISTRY)


def default_training(name: str, dataset: str = "mosi") -> dict[str, Any]:
    """The published training settings of model ``name`` on ``dataset`` (batch size, lr, ...)."""
    _check_name(name)
    if name in _RECURRENT:
        presets = _RECURRENT[name].DEFAULT_TRAINING
    else:
        from mdmest.fusion import mag

        presets = mag.DEFAULT_TRAINING
    return dict(presets.get(dataset, {}))


def _check_name(name: str) -> None:
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {model_names()}")


def build_model(
    name: str,
    text_dim: int,
    audio_dim: int,
    video_dim: int,
    dataset: str = "mosi",
    **overrides: Any,
) -> FusionModel:
    """Build a registered fusion model with MMSA's hyperparameters for ``dataset``.

    Parameters
    ----------
    name : str
        A key of :data:`MODEL_REGISTRY` ("ef_lstm", "tfn", "lmf", "mfn", ...).
    text_dim, audio_dim, video_dim : int
        Input feature sizes (text 300 GloVe or 768 BERT, audio 74 COVAREP, video 47 or 35 FACET).
    dataset : {"mosi", "mosei"}
        Which hyperparameter preset to use.
    **overrides
        Constructor arguments replacing the preset's.

    Examples
    --------
    >>> model = build_model("lmf", 300, 74, 47, dataset="mosei")
    >>> model.representation_dims
    (64, 16, 128)
    """
    _check_name(name)
    return MODEL_REGISTRY[name](text_dim, audio_dim, video_dim, dataset=dataset, **overrides)


__all__ = [
    "EFLSTM",
    "LMF",
    "MFN",
    "MODEL_REGISTRY",
    "TFN",
    "PresetFusionModel",
    "build_model",
    "default_training",
    "model_names",
]
