"""A small late-fusion MLP for tabular views (segments of length 1, e.g. scikit-learn data sets)."""

from __future__ import annotations

import torch
from torch import nn

from mdmest.fusion.base import FusionOutput
from mdmest.fusion.models._common import (
    PresetFusionModel,
    check_dropouts,
    check_sizes,
    masked_mean,
    modality_input,
)


class MLPFusion(PresetFusionModel):
    r"""One encoder per view, ``Linear → ReLU → Linear → tanh``, then a head on the concatenation.

    Each view's features are averaged over its steps (tabular data has one step), encoded into
    :math:`z_k \in (-1, 1)^{\text{hidden}}`, and the prediction is
    ``Linear(ReLU(Linear(dropout([z_text; z_audio; z_video]))))``. The representations are bounded
    by the tanh, so the trainers' Wasserstein penalty reads them as they are
    (``bounded_representations = True``; see :meth:`TrainConfig.effective_measure_kwargs`).
    Registered as model ``"mlp"``; :class:`MLPLinearFusion` (``"mlp_linear"``) is the same without
    the tanh.

    Parameters
    ----------
    text_dim, audio_dim, video_dim : int
        Input feature sizes of the three views.
    hidden_dim : int, default 16
        Width of each encoder and of each :math:`z_k`.
    dropout : float, default 0.1
        Dropout on the concatenated representations.
    bounded : bool, optional
        Whether the encoders end with the tanh (the instance's ``bounded_representations``);
        default: the class's (True here, False for :class:`MLPLinearFusion`).

    Examples
    --------
    >>> import torch
    >>> model = MLPFusion(10, 10, 10).eval()
    >>> ones = torch.ones(4, dtype=torch.int64)
    >>> batch = {"text": torch.randn(4, 1, 10), "audio": torch.randn(4, 1, 10),
    ...          "video": torch.randn(4, 1, 10), "text_lengths": ones,
    ...          "audio_lengths": ones, "video_lengths": ones}
    >>> model(batch).prediction.shape
    torch.Size([4])
    """

    bounded_representations = True
    PRESETS = {"mosi": {}, "mosei": {}}
    DEFAULT_TRAINING = {
        "mosi": {"batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "task_loss": "l1"},
        "mosei": {"batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "task_loss": "l1"},
    }

    def __init__(
        self,
        text_dim: int,
        audio_dim: int,
        video_dim: int,
        *,
        hidden_dim: int = 16,
        dropout: float = 0.1,
        bounded: bool | None = None,
    ) -> None:
        super().__init__()
        check_sizes(
            text_dim=text_dim, audio_dim=audio_dim, video_dim=video_dim, hidden_dim=hidden_dim
        )
        check_dropouts(dropout=dropout)
        self.input_dims = (text_dim, audio_dim, video_dim)
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim))
            for d in self.input_dims
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(3 * hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1)
        )
        self.representation_dims = (hidden_dim, hidden_dim, hidden_dim)
        if bounded is not None:
            self.bounded_representations = bool(bounded)

    def forward(self, batch: dict) -> FusionOutput:
        """Predict (B,) and return z_text, z_audio, z_video of shape (B, hidden_dim)."""
        zs = []
        for modality, dim, encoder in zip(
            ("text", "audio", "video"), self.input_dims, self.encoders
        ):
            features, lengths = modality_input(batch, modality, dim)
            z = encoder(masked_mean(features, lengths))
            zs.append(torch.tanh(z) if self.bounded_representations else z)
        prediction = self.head(self.dropout(torch.cat(zs, dim=-1))).squeeze(-1)
        return FusionOutput(prediction, *zs)


class MLPLinearFusion(MLPFusion):
    """:class:`MLPFusion` without the tanh: unbounded representations (model ``"mlp_linear"``),
    which the trainers' Wasserstein penalty standardises."""

    bounded_representations = False


__all__ = ["MLPFusion", "MLPLinearFusion"]
