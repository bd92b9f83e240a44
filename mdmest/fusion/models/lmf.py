"""Low-rank Multimodal Fusion (Liu et al., 2018): tensor fusion through rank-r modality factors."""

from __future__ import annotations

import torch
from torch import nn

from mdmest.fusion.base import MODALITIES, FusionOutput
from mdmest.fusion.models._common import (
    PresetFusionModel,
    UnimodalEncoders,
    check_dropouts,
    check_sizes,
    with_constant_one,
)

__all__ = ["LMF"]


class LMF(PresetFusionModel):
    r"""Low-rank Multimodal Fusion ("LFN" in the paper).

    The same sub-networks as :class:`TFN`; each modality has ``rank`` factors
    :math:`W_k^{(r)} \in \mathbb{R}^{(1 + d_k) \times 1}` and

    .. math:: \hat y = b + \sum_{r=1}^{R} w_r \prod_{k \in \{t, a, v\}} [1; z_k]^\top W_k^{(r)},

    which equals a linear map of TFN's outer-product tensor whose weight has rank R.

    Parameters
    ----------
    text_dim, audio_dim, video_dim : int
        Input feature sizes.
    hidden_dims : tuple of int, default (128, 16, 128)
        (text LSTM hidden, audio MLP width, video MLP width).
    text_out : int, default 64
        Size of z_text (MMSA uses hidden_dims[0] // 2).
    dropout : float, default 0.3
        Dropout of the three sub-networks.
    rank : int, default 3
        Number of factors R (MOSEI preset: 4, dropout 0.2).

    Notes
    -----
    Representations: the sub-network outputs z_text (B, text_out), z_audio (B, hidden_dims[1]),
    z_video (B, hidden_dims[2]); unbounded as for TFN (``bounded_representations = False``): with a
    Wasserstein penalty pass ``normalize=True`` to the measure (the trainer does by default).

    References
    ----------
    Liu et al., "Efficient Low-rank Multimodal Fusion with Modality-Specific Factors", ACL 2018.
    """

    PRESETS = {"mosi": {}, "mosei": {"dropout": 0.2, "rank": 4}}
    bounded_representations = False
    DEFAULT_TRAINING = {
        "mosi": {"batch_size": 64, "lr": 1e-3, "weight_decay": 5e-3, "task_loss": "l1"},
        "mosei": {"batch_size": 32, "lr": 1e-3, "weight_decay": 1e-3, "task_loss": "l1"},
    }

    def __init__(
        self,
        text_dim: int,
        audio_dim: int,
        video_dim: int,
        *,
        hidden_dims: tuple[int, int, int] = (128, 16, 128),
        text_out: int = 64,
        dropout: float = 0.3,
        rank: int = 3,
    ) -> None:
        super().__init__()
        hidden_dims = tuple(hidden_dims)
        if len(hidden_dims) != 3:
            raise ValueError(
                f"hidden_dims should hold 3 sizes (text, audio, video), got {hidden_dims}"
            )
        check_sizes(
            text_dim=text_dim,
            audio_dim=audio_dim,
            video_dim=video_dim,
            hidden_dims=hidden_dims,
            text_out=text_out,
            rank=rank,
        )
        check_dropouts(dropout=dropout)
        self.encoders = UnimodalEncoders(
            (text_dim, audio_dim, video_dim), hidden_dims, text_out, (dropout,) * 3
        )
        self.representation_dims = self.encoders.output_dims
        self.factors = nn.ParameterDict(
            {
                modality: nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, size + 1, 1)))
                for modality, size in zip(MODALITIES, self.representation_dims, strict=True)
            }
        )
        self.fusion_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank)))
        self.fusion_bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: dict) -> FusionOutput:
        """Predict (B,) and return the three sub-network outputs as representations."""
        representations = self.encoders(batch)
        product = None
        for modality, z in zip(MODALITIES, representations, strict=True):
            projected = torch.einsum("bi,rio->rbo", with_constant_one(z), self.factors[modality])
            product = projected if product is None else product * projected
        prediction = torch.einsum("r,rbo->bo", self.fusion_weights[0], product).squeeze(-1)
        return FusionOutput(prediction + self.fusion_bias, *representations)
