"""Parts the fusion models share: batch checks, masked pooling, LSTM last states, sub-networks."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mdmest._validation import check_choice
from mdmest.fusion.base import MODALITIES, FusionModel


def modality_input(
    batch: dict, modality: str, expected_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and return one modality's padded features and lengths.

    Parameters
    ----------
    batch : dict
        The batch dict of :class:`mdmest.fusion.base.FusionModel`.
    modality : str
        One of ``"text"``, ``"audio"``, ``"video"``.
    expected_dim : int
        The feature size the model was built with.

    Returns
    -------
    features : torch.Tensor
        Float tensor of shape (B, L, d).
    lengths : torch.Tensor
        Int64 tensor of shape (B,), each in [1, L].

    Raises
    ------
    ValueError
        If a key is missing, a shape is wrong or a length lies outside [1, L].
    """
    length_key = f"{modality}_lengths"
    for key in (modality, length_key):
        if key not in batch:
            raise ValueError(f"batch has no {key!r} entry; keys present: {sorted(batch)}")
    features, lengths = batch[modality], batch[length_key]
    if features.dim() != 3:
        raise ValueError(
            f"batch[{modality!r}] should have shape (B, L, d), got {tuple(features.shape)}"
        )
    if features.shape[-1] != expected_dim:
        raise ValueError(
            f"batch[{modality!r}] has {features.shape[-1]} features, "
            f"the model was built with {modality}_dim={expected_dim}"
        )
    if lengths.shape != (features.shape[0],):
        raise ValueError(
            f"batch[{length_key!r}] should have shape ({features.shape[0]},), "
            f"got {tuple(lengths.shape)}"
        )
    if bool((lengths < 1).any()) or bool((lengths > features.shape[1]).any()):
        raise ValueError(
            f"batch[{length_key!r}] should lie in [1, {features.shape[1]}], got values from "
            f"{int(lengths.min())} to {int(lengths.max())}"
        )
    return features, lengths


def aligned_inputs(
    batch: dict, input_dims: tuple[int, int, int], model_name: str
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Check word-aligned input: the three modalities share their sequence length and lengths.

    Returns the features in the order of ``MODALITIES`` and the shared lengths (B,).
    """
    checked = [modality_input(batch, m, d) for m, d in zip(MODALITIES, input_dims, strict=True)]
    features = [x for x, _ in checked]
    steps = [x.shape[1] for x in features]
    if len(set(steps)) != 1:
        raise ValueError(
            f"{model_name} needs aligned sequences (the same L for text, audio and video), "
            f"got L = {steps}; align the features to words first"
        )
    lengths = checked[0][1]
    for modality, (_, other) in zip(MODALITIES[1:], checked[1:], strict=True):
        if not torch.equal(other, lengths):
            raise ValueError(
                f"{model_name} needs aligned sequences, but {modality}_lengths differs "
                "from text_lengths"
            )
    return features, lengths


def sequence_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Boolean (B, steps) mask, True on the valid (non-padded) positions."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


def masked_mean(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid steps of right-padded sequences.

    Parameters
    ----------
    features : torch.Tensor
        Shape (B, L, d).
    lengths : torch.Tensor
        Shape (B,), the number of valid steps of each sequence (≥ 1).

    Returns
    -------
    torch.Tensor
        Shape (B, d). Padding never enters, even when it holds NaN or inf.
    """
    mask = sequence_mask(lengths, features.shape[1]).unsqueeze(-1)
    total = torch.where(mask, features, torch.zeros_like(features)).sum(dim=1)
    return total / lengths.unsqueeze(1).to(features.dtype)


def lstm_last_state(lstm: nn.LSTM, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Top-layer hidden state of a batch-first LSTM at each sequence's last valid step.

    Parameters
    ----------
    lstm : torch.nn.LSTM
        A unidirectional LSTM with ``batch_first=True``.
    features : torch.Tensor
        Shape (B, L, d), right-padded.
    lengths : torch.Tensor
        Shape (B,).

    Returns
    -------
    torch.Tensor
        Shape (B, hidden_size).
    """
    lengths = lengths.cpu()
    if bool((lengths == features.shape[1]).all()):
        # No padding: packing would only add a sort and two gathers.
        _, (last_hidden, _) = lstm(features)
    else:
        packed = pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        _, (last_hidden, _) = lstm(packed)
    return last_hidden[-1]


def with_constant_one(z: torch.Tensor) -> torch.Tensor:
    """Prepend a column of ones: (B, d) → (B, 1 + d), the [1; z] of tensor and low-rank fusion."""
    return torch.cat([z.new_ones(z.shape[0], 1), z], dim=1)


class PooledSubNet(nn.Module):
    """Audio/visual sub-network of TFN and LMF: masked mean, BatchNorm, dropout, 3 Linear+ReLU."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, d), (B,) → (B, hidden)."""
        return self.layers(self.dropout(self.norm(masked_mean(features, lengths))))


class TextSubNet(nn.Module):
    """Text sub-network of TFN and LMF: LSTM → last valid hidden state → dropout → Linear."""

    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden, out_features)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, d), (B,) → (B, out_features)."""
        return self.linear(self.dropout(lstm_last_state(self.lstm, features, lengths)))


class UnimodalEncoders(nn.Module):
    """The three pre-fusion sub-networks of TFN and LMF (text LSTM, pooled audio and video MLPs).

    Parameters
    ----------
    input_dims : tuple of int
        (text_dim, audio_dim, video_dim).
    hidden_dims : tuple of int
        (text LSTM hidden size, audio MLP width, video MLP width).
    text_out : int
        Output size of the text sub-network.
    dropouts : tuple of float
        (text, audio, video) dropout probabilities.
    """

    def __init__(
        self,
        input_dims: tuple[int, int, int],
        hidden_dims: tuple[int, int, int],
        text_out: int,
        dropouts: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.input_dims = input_dims
        self.text = TextSubNet(input_dims[0], hidden_dims[0], text_out, dropouts[0])
        self.audio = PooledSubNet(input_dims[1], hidden_dims[1], dropouts[1])
        self.video = PooledSubNet(input_dims[2], hidden_dims[2], dropouts[2])
        self.output_dims = (text_out, hidden_dims[1], hidden_dims[2])

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (z_text, z_audio, z_video) of shapes (B, d_k); sequences need not be aligned."""
        encoders = (self.text, self.audio, self.video)
        return tuple(  # type: ignore[return-value]
            encoder(*modality_input(batch, modality, dim))
            for encoder, modality, dim in zip(encoders, MODALITIES, self.input_dims, strict=True)
        )


def two_layer_mlp(
    in_features: int, hidden: int, out_features: int, dropout: float
) -> nn.Sequential:
    """Linear → ReLU → Dropout → Linear (MFN's attention, gate and output networks)."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_features),
    )


def check_sizes(**sizes: int | tuple[int, ...]) -> None:
    """Raise a ValueError naming the first argument that holds a non-positive size."""
    for name, value in sizes.items():
        values = value if isinstance(value, tuple) else (value,)
        if any(int(v) < 1 for v in values):
            raise ValueError(f"{name} should be positive, got {value}")


def check_dropouts(**dropouts: float | tuple[float, ...]) -> None:
    """Raise a ValueError naming the first argument that holds a probability outside [0, 1)."""
    for name, value in dropouts.items():
        values = value if isinstance(value, tuple) else (value,)
        if any(not 0.0 <= float(v) < 1.0 for v in values):
            raise ValueError(f"{name} should lie in [0, 1), got {value}")


class PresetFusionModel(FusionModel):
    """A fusion model with published hyperparameters per dataset.

    ``PRESETS[dataset]`` holds the constructor arguments of the preset (for MMSA's models, only
    those that differ from the constructor's defaults, which are MMSA's CMU-MOSI values), and
    ``DEFAULT_TRAINING[dataset]`` the published training settings (``batch_size``, ``lr``,
    ``weight_decay``, ``task_loss``, ...) for a trainer to use.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]]
    DEFAULT_TRAINING: ClassVar[dict[str, dict[str, Any]]]

    @classmethod
    def preset_arguments(cls, dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments of the preset of ``dataset``, replaced by ``overrides``.

        Raises
        ------
        ValueError
            If ``dataset`` has no preset.
        """
        check_choice("dataset", dataset, sorted(cls.PRESETS))
        return {**cls.PRESETS[dataset], **overrides}

    @classmethod
    def from_preset(
        cls,
        text_dim: int,
        audio_dim: int,
        video_dim: int,
        dataset: str = "mosi",
        **overrides: Any,
    ) -> PresetFusionModel:
        """Build the model with the hyperparameters of ``dataset``, then ``overrides``.

        Parameters
        ----------
        text_dim, audio_dim, video_dim : int
            Input feature sizes (e.g. 300 or 768, 74, 47 or 35).
        dataset : {"mosi", "mosei"}
            Which preset to use.
        **overrides
            Constructor arguments that replace the preset's; unknown names raise ``TypeError``.
        """
        return cls(text_dim, audio_dim, video_dim, **cls.preset_arguments(dataset, overrides))
