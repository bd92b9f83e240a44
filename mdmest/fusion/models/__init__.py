"""The paper's recurrent fusion models (EF-LSTM, TFN, LMF, MFN) and a registry of builders.

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

#: Model name → builder, called as
#: ``builder(text_dim, audio_dim, video_dim, dataset=..., **overrides)``.
#: Other model families register themselves here (e.g. the MAG models).
MODEL_REGISTRY: dict[str, Callable[..., FusionModel]] = {
    "ef_lstm": EFLSTM.from_preset,
    "tfn": TFN.from_preset,
    "lmf": LMF.from_preset,
    "mfn": MFN.from_preset,
}


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
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](text_dim, audio_dim, video_dim, dataset=dataset, **overrides)


__all__ = [
    "EFLSTM",
    "LMF",
    "MFN",
    "MODEL_REGISTRY",
    "TFN",
    "PresetFusionModel",
    "build_model",
]
