"""The paper's fusion models and one registry of them.

EF-LSTM, TFN, LMF and MFN (MMSA 2.2.1's recurrent models) and MAG-BERT, MAG-XLNet (a pretrained
transformer with a Multimodal Adaptation Gate), and two small late-fusion MLPs for tabular views
("mlp", "mlp_linear"; :mod:`mdmest.fusion.models.mlp`). Importing this package does not import
``transformers``: the MAG models import it when they are built.

Every model class has ``from_preset(text_dim, audio_dim, video_dim, dataset="mosi", **overrides)``,
which applies the published hyperparameters of ``dataset``, a ``DEFAULT_TRAINING[dataset]`` mapping
of the published training settings, and ``bounded_representations`` (see
:class:`~mdmest.fusion.base.FusionModel`). ``build_model(name, ...)`` builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mdmest._validation import check_choice
from mdmest.fusion.base import FusionModel
from mdmest.fusion.models._common import PresetFusionModel
from mdmest.fusion.models.ef_lstm import EFLSTM
from mdmest.fusion.models.lmf import LMF
from mdmest.fusion.models.mag import MAGBert, MAGXLNet
from mdmest.fusion.models.mfn import MFN
from mdmest.fusion.models.mlp import MLPFusion, MLPLinearFusion
from mdmest.fusion.models.tfn import TFN

# Model name → model class: the one table the names, builders and settings below are read from.
_MODEL_CLASSES: dict[str, type[PresetFusionModel]] = {
    "ef_lstm": EFLSTM,
    "tfn": TFN,
    "lmf": LMF,
    "mfn": MFN,
    "mag_bert": MAGBert,
    "mag_xlnet": MAGXLNet,
    # Small late-fusion models for tabular views (one step per segment), e.g. scikit-learn tables.
    "mlp": MLPFusion,
    "mlp_linear": MLPLinearFusion,
}

#: Model name → builder, called as
#: ``builder(text_dim, audio_dim, video_dim, dataset=..., **overrides)`` (the class's
#: ``from_preset``).
MODEL_REGISTRY: dict[str, Callable[..., FusionModel]] = {
    name: cls.from_preset for name, cls in _MODEL_CLASSES.items()
}


def model_names() -> list[str]:
    """Names accepted by :func:`build_model`, :func:`model_class` and :func:`default_training`."""
    return sorted(_MODEL_CLASSES)


def model_class(name: str) -> type[FusionModel]:
    """The class of model ``name``, e.g. to read ``bounded_representations`` without building it.

    Examples
    --------
    >>> model_class("tfn").__name__, model_class("tfn").bounded_representations
    ('TFN', False)
    """
    check_choice("model", name, model_names())
    return _MODEL_CLASSES[name]


def default_training(name: str, dataset: str = "mosi") -> dict[str, Any]:
    """The published training settings of model ``name`` on ``dataset``.

    Returns a new dict with at least ``batch_size``, ``lr``, ``weight_decay`` and ``task_loss``
    (``"mse"`` for the MAG models, ``"l1"`` for MMSA's); the MAG models add ``warmup_fraction``,
    ``epochs`` and their preset's constructor settings (``beta_shift``, ``dropout``,
    ``max_length``).

    Raises
    ------
    ValueError
        If the model or the dataset is unknown.

    Examples
    --------
    >>> default_training("mfn", "mosei")
    {'batch_size': 64, 'lr': 0.0005, 'weight_decay': 0.0001, 'task_loss': 'l1'}
    """
    cls = _MODEL_CLASSES[check_choice("model", name, model_names())]
    check_choice("dataset", dataset, sorted(cls.DEFAULT_TRAINING))
    return dict(cls.DEFAULT_TRAINING[dataset])


def build_model(
    name: str,
    text_dim: int,
    audio_dim: int,
    video_dim: int,
    dataset: str = "mosi",
    **overrides: Any,
) -> FusionModel:
    """Build a registered fusion model with the published hyperparameters for ``dataset``.

    Parameters
    ----------
    name : str
        One of :func:`model_names` ("ef_lstm", "tfn", "lmf", "mfn", "mag_bert", "mag_xlnet").
    text_dim, audio_dim, video_dim : int
        Input feature sizes (text 300 GloVe or 768 BERT, audio 74 COVAREP, video 47 or 35 FACET);
        the MAG models ignore ``text_dim``.
    dataset : {"mosi", "mosei"}
        Which hyperparameter preset to use.
    **overrides
        Constructor arguments replacing the preset's (and ``backbone=PATH`` for the MAG models).

    Examples
    --------
    >>> model = build_model("lmf", 300, 74, 47, dataset="mosei")
    >>> model.representation_dims
    (64, 16, 128)
    """
    check_choice("model", name, model_names())
    return MODEL_REGISTRY[name](text_dim, audio_dim, video_dim, dataset=dataset, **overrides)


__all__ = [
    "EFLSTM",
    "LMF",
    "MAGBert",
    "MAGXLNet",
    "MFN",
    "MLPFusion",
    "MLPLinearFusion",
    "MODEL_REGISTRY",
    "TFN",
    "PresetFusionModel",
    "build_model",
    "default_training",
    "model_class",
    "model_names",
]
