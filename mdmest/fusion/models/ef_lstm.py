"""Early-fusion LSTM (EF-LSTM): the three modalities concatenated per word, then one LSTM."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mdmest.fusion.base import FusionOutput
from mdmest.fusion.models._common import (
    PresetFusionModel,
    aligned_inputs,
    check_dropouts,
    check_sizes,
    lstm_last_state,
    masked_mean,
    sequence_mask,
)

__all__ = ["EFLSTM"]

# nn.LSTM stacks its gate weights as (input, forget, cell candidate, output) blocks of hidden rows.
_CANDIDATE_GATE = 2


class EFLSTM(PresetFusionModel):
    r"""Early-fusion LSTM on word-aligned text, audio and video.

    Each step's input is :math:`x_s = [t_s; a_s; v_s]`, batch-normalised feature-wise over the valid
    steps, fed to a stacked LSTM; the top hidden state at the last valid step goes through
    dropout → Linear → ReLU → dropout → Linear(1).

    Early fusion has no modality encoders, so the representations are read from the first LSTM
    layer's input weights. With :math:`W^{(k)}` the columns of the cell-candidate gate's input
    matrix that multiply modality :math:`k`, and :math:`\bar x^{(k)}` the mean of its normalised
    features over the valid steps,

    .. math:: z_k = \tanh\big(W^{(k)} \bar x^{(k)}\big) \in (-1, 1)^{\text{hidden}},

    the modality's own share of what the LSTM writes into its cell, averaged over the sequence (the
    mean commutes with :math:`W^{(k)}`). The penalty's gradient thus reaches exactly the weights
    through which each modality drives the prediction, no parameter is added, and the
    representations are bounded.

    Parameters
    ----------
    text_dim, audio_dim, video_dim : int
        Input feature sizes.
    hidden_dim : int, default 128
        LSTM and head width; also the size of each :math:`z_k`.
    num_layers : int, default 4
        Stacked LSTM layers.
    dropout : float, default 0.5
        Between LSTM layers and in the head.

    Notes
    -----
    Defaults are MMSA 2.2.1's CMU-MOSI values; ``EFLSTM.from_preset(..., dataset="mosei")`` uses
    hidden 256, 2 layers, dropout 0.4. MMSA normalises each time-step position over the batch and
    reads the LSTM state after the padding; here padding is skipped in both places, so the output of
    a sequence does not depend on its padding.

    Examples
    --------
    >>> import torch
    >>> model = EFLSTM(300, 74, 47).eval()
    >>> lengths = torch.tensor([5, 3])
    >>> batch = {"text": torch.randn(2, 5, 300), "audio": torch.randn(2, 5, 74),
    ...          "video": torch.randn(2, 5, 47), "text_lengths": lengths,
    ...          "audio_lengths": lengths, "video_lengths": lengths}
    >>> out = model(batch)
    >>> out.prediction.shape, out.z_audio.shape
    (torch.Size([2]), torch.Size([2, 128]))
    """

    #: tanh-squashed summaries, in [-1, 1].
    bounded_representations = True
    PRESETS = {"mosi": {}, "mosei": {"hidden_dim": 256, "num_layers": 2, "dropout": 0.4}}
    DEFAULT_TRAINING = {
        "mosi": {"batch_size": 32, "lr": 1e-3, "weight_decay": 5e-3, "task_loss": "l1"},
        "mosei": {"batch_size": 128, "lr": 5e-3, "weight_decay": 1e-4, "task_loss": "l1"},
    }

    def __init__(
        self,
        text_dim: int,
        audio_dim: int,
        video_dim: int,
        *,
        hidden_dim: int = 128,
        num_layers: int = 4,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_sizes(
            text_dim=text_dim,
            audio_dim=audio_dim,
            video_dim=video_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
        )
        check_dropouts(dropout=dropout)
        self.input_dims = (text_dim, audio_dim, video_dim)
        in_features = sum(self.input_dims)
        self.norm = nn.BatchNorm1d(in_features)
        self.lstm = nn.LSTM(
            in_features,
            hidden_dim,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, 1)
        self.representation_dims = (hidden_dim, hidden_dim, hidden_dim)

    def forward(self, batch: dict) -> FusionOutput:
        """Predict (B,) and return z_text, z_audio, z_video of shape (B, hidden_dim)."""
        features, lengths = aligned_inputs(batch, self.input_dims, "EFLSTM")
        fused = torch.cat(features, dim=-1)
        valid = sequence_mask(lengths, fused.shape[1])
        if bool(valid.all()):
            normed = self.norm(fused.flatten(0, 1)).view_as(fused)
        else:
            # Normalise the valid steps only: padding shifts neither the statistics nor the output.
            normed = torch.zeros_like(fused).masked_scatter(
                valid.unsqueeze(-1), self.norm(fused[valid])
            )

        last = lstm_last_state(self.lstm, normed, lengths)
        head = F.relu(self.hidden(self.dropout(last)))
        prediction = self.out(self.dropout(head)).squeeze(-1)

        hidden = self.lstm.hidden_size
        candidate = self.lstm.weight_ih_l0[
            _CANDIDATE_GATE * hidden : (_CANDIDATE_GATE + 1) * hidden
        ]
        pooled = masked_mean(normed, lengths).split(self.input_dims, dim=-1)
        weights = candidate.split(self.input_dims, dim=-1)
        z_text, z_audio, z_video = (
            torch.tanh(F.linear(x, w)) for x, w in zip(pooled, weights, strict=True)
        )
        return FusionOutput(prediction, z_text, z_audio, z_video)
