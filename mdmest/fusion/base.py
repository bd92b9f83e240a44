"""The contract every fusion model and loader shares: the batch layout and the model output."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

__all__ = ["MODALITIES", "FusionModel", "FusionOutput"]

MODALITIES = ("text", "audio", "video")


class FusionOutput(NamedTuple):
    """What a fusion model returns.

    ``prediction`` has shape (B,); ``z_text``, ``z_audio`` and ``z_video`` have shapes (B, d_k) and are
    the modality representations the dependency penalty is computed on.
    """

    prediction: torch.Tensor
    z_text: torch.Tensor
    z_audio: torch.Tensor
    z_video: torch.Tensor

    @property
    def representations(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.z_text, self.z_audio, self.z_video)


class FusionModel(nn.Module):
    """Base class of the fusion models.

    ``forward(batch)`` takes the dict built by :func:`mdmest.fusion.data.collate`:

    - ``"text"``: float (B, L, d_text) word features (absent for models that read ``"words"``),
    - ``"audio"``: float (B, L_a, d_audio), ``"video"``: float (B, L_v, d_video),
    - ``"text_lengths"``, ``"audio_lengths"``, ``"video_lengths"``: int64 (B,), padding at the end,
    - ``"label"``: float (B,), ``"words"``: list of B word lists, ``"id"``: list of B segment ids,

    and returns a :class:`FusionOutput`. ``representation_dims`` gives (d_text, d_audio, d_video) of the
    representations, which is what a dependency measure's ``dims`` must be.
    """

    representation_dims: tuple[int, int, int]

    #: Whether every representation is squashed into a bounded range (tanh, sigmoid, LSTM hidden
    #: states), so that the model cannot change a dependency penalty by rescaling them. When False
    #: (ReLU or linear outputs, LayerNorm'd features, or a model that does not say: the default),
    #: the Wasserstein distance W_1 grows with the representations' scale, so the Trainer's
    #: Wasserstein penalty standardises each view (docs/reproduction.md measures both choices).
    bounded_representations: ClassVar[bool] = False

    #: Whether the model reads the transcript (``batch["words"]``) and tokenizes it itself, rather
    #: than the word features ``batch["text"]``; such models need no text features.
    reads_words: ClassVar[bool] = False

    def forward(self, batch: dict) -> FusionOutput:  # pragma: no cover - interface
        raise NotImplementedError
