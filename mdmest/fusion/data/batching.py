"""Batches of segments: padding, :func:`collate` and :func:`make_loader`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mdmest.fusion.data.segments import Segment, SplitData

__all__ = ["collate", "make_loader", "pad_arrays", "to_device"]


def pad_arrays(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack (L_i, d) arrays into float32 (N, max L_i, d), zero-padded at the end, and int64 lengths.

    Examples
    --------
    >>> padded, lengths = pad_arrays([np.ones((2, 3)), np.ones((1, 3))])
    >>> padded.shape, lengths.tolist(), padded[1, 1].tolist()
    ((2, 2, 3), [2, 1], [0.0, 0.0, 0.0])
    """
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    out = np.zeros((len(arrays), lengths.max(), arrays[0].shape[1]), dtype=np.float32)
    for i, array in enumerate(arrays):
        out[i, : array.shape[0]] = array
    return out, lengths


def _pad(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    padded, lengths = pad_arrays(arrays)
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def collate(segments: Sequence[Segment]) -> dict[str, Any]:
    """Batch segments into the dict that :class:`mdmest.fusion.base.FusionModel` reads.

    Sequences are padded at the end with zeros to the longest in the batch.

    Parameters
    ----------
    segments : sequence of Segment
        All with text features, or none.

    Returns
    -------
    dict
        ``"text"`` float32 (B, L, d_text) (only when the segments have text features), ``"audio"``
        (B, L_a, d_audio), ``"video"`` (B, L_v, d_video); ``"text_lengths"`` (when ``"text"`` is
        present, else the word counts when every segment has words), ``"audio_lengths"``,
        ``"video_lengths"`` int64 (B,); ``"label"`` float32 (B,); ``"words"`` list of B word lists
        (None where missing); ``"id"`` list of B str.
    """
    if not segments:
        raise ValueError("collate needs at least one segment")
    has_text = [s.text is not None for s in segments]
    if any(has_text) and not all(has_text):
        raise ValueError("collate: some segments have text features and some do not")
    batch: dict[str, Any] = {}
    if all(has_text):
        batch["text"], batch["text_lengths"] = _pad([s.text for s in segments])
    elif all(s.words is not None for s in segments):
        batch["text_lengths"] = torch.tensor([len(s.words) for s in segments], dtype=torch.int64)
    batch["audio"], batch["audio_lengths"] = _pad([s.audio for s in segments])
    batch["video"], batch["video_lengths"] = _pad([s.video for s in segments])
    batch["label"] = torch.tensor([s.label for s in segments], dtype=torch.float32)
    batch["words"] = [s.words for s in segments]
    batch["id"] = [s.id for s in segments]
    return batch


def make_loader(
    split: SplitData,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    *,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` over a split that yields :func:`collate` batches.

    With ``shuffle=True`` the order comes from a ``torch.Generator`` seeded with ``seed``, so it is
    reproducible and independent of the global torch seed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        split,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate,
        drop_last=drop_last,
        num_workers=num_workers,
    )


def to_device(batch: dict, device: torch.device) -> dict:
    """``batch`` with its tensors moved to ``device`` (other entries, e.g. words, as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
