"""The MMSA formats (thuiar/MMSA, ``aligned_50.pkl`` and ``unaligned_50.pkl``).

A dict with splits ``"train"``, ``"valid"``, ``"test"``, each a dict of arrays: ``text`` (N, T, 768),
``text_bert`` (N, 3, T: word-piece ids, mask, segment ids), ``audio`` (N, T_a, d_a), ``vision``
(N, T_v, d_v), ``regression_labels`` (N,), ``id``, ``raw_text``; the unaligned file adds
``audio_lengths`` and ``vision_lengths``. Padding is at the end; aligned lengths come from the mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mdmest.fusion.data.batching import pad_arrays
from mdmest.fusion.data.dataset import SPLITS, MultimodalDataset
from mdmest.fusion.data.safe_pickle import atomic_dump
from mdmest.fusion.data.segments import Segment, SplitData
from mdmest.fusion.data.validation import (
    DatasetFormatError,
    as_label,
    as_matrix,
    require_field,
    where,
)

__all__ = ["FORMATS", "detect", "read", "write"]

FORMATS = ("mmsa_aligned", "mmsa_unaligned")
"""The format names this module reads and writes."""


def detect(content: Any) -> str | None:
    """``"mmsa_unaligned"`` or ``"mmsa_aligned"`` for a dict with splits train/valid/test, else None."""
    if not (isinstance(content, Mapping) and set(SPLITS) <= set(content)):
        return None
    train = content["train"]
    return (
        "mmsa_unaligned"
        if isinstance(train, Mapping) and "audio_lengths" in train
        else "mmsa_aligned"
    )


# ---------------------------------------------------------------------------------------- reading


def _array(data: Mapping[str, Any], split: str, key: str, ndim: int, n: int | None) -> np.ndarray:
    if key not in data:
        raise DatasetFormatError(f"{where(split, key)}: missing (keys present: {sorted(data)})")
    array = np.asarray(data[key])
    if array.ndim != ndim or (n is not None and array.shape[0] != n):
        expected = f"{ndim}-D" + ("" if n is None else f" with {n} segments")
        raise DatasetFormatError(
            f"{where(split, key)}: expected {expected}, got shape {array.shape}"
        )
    return array


def _checked_lengths(lengths: np.ndarray, split: str, key: str, padded: int) -> np.ndarray:
    numeric = np.issubdtype(lengths.dtype, np.number)
    if not numeric or (lengths.size and (lengths.min() < 0 or lengths.max() > padded)):
        raise DatasetFormatError(
            f"{where(split, key)}: expected lengths in [0, {padded}], "
            f"got {lengths.min()}..{lengths.max()}"
        )
    # A segment with no frames keeps one zero row of padding, so packed recurrent models still run.
    return np.maximum(lengths.astype(np.int64), 1)


def _read_split(data: Any, split: str, unaligned: bool) -> SplitData:
    if not isinstance(data, Mapping):
        raise DatasetFormatError(f"split {split!r}: expected a dict of arrays, got {type(data)}")
    labels = _array(data, split, "regression_labels", 1, None)
    n = labels.shape[0]
    text = _array(data, split, "text", 3, n)
    audio = _array(data, split, "audio", 3, n)
    vision = _array(data, split, "vision", 3, n)
    ids = _array(data, split, "id", 1, n)
    raw_text = _array(data, split, "raw_text", 1, n) if "raw_text" in data else None
    if "text_bert" in data:
        mask = _array(data, split, "text_bert", 3, n)[:, 1, :]
        text_lengths = _checked_lengths(mask.sum(axis=1), split, "text_bert", text.shape[1])
    else:
        text_lengths = np.full(n, text.shape[1])
    if unaligned:
        audio_lengths, vision_lengths = (
            _checked_lengths(_array(data, split, key, 1, n), split, key, array.shape[1])
            for key, array in (("audio_lengths", audio), ("vision_lengths", vision))
        )
    else:
        for key, array in (("audio", audio), ("vision", vision)):
            if array.shape[1] != text.shape[1]:
                raise DatasetFormatError(
                    f"{where(split, key)}: aligned data needs {text.shape[1]} steps like 'text', "
                    f"got shape {array.shape}"
                )
        audio_lengths = vision_lengths = text_lengths
    segments = [
        Segment(
            id=str(ids[i]),
            label=as_label(labels[i], split, "regression_labels", i),
            text=as_matrix(text[i, : text_lengths[i]], split, "text", i),
            audio=as_matrix(audio[i, : audio_lengths[i]], split, "audio", i, neg_inf_to_zero=True),
            video=as_matrix(vision[i, : vision_lengths[i]], split, "vision", i),
            words=None if raw_text is None else str(raw_text[i]).split(),
        )
        for i in range(n)
    ]
    return SplitData(segments, split)


def read(content: Any, format: str) -> dict[str, SplitData]:
    """The splits train/valid/test of a loaded MMSA pickle in ``format`` (one of :data:`FORMATS`)."""
    unaligned = format == "mmsa_unaligned"
    return {name: _read_split(content[name], name, unaligned) for name in SPLITS}


# ---------------------------------------------------------------------------------------- writing


def _split_arrays(split: SplitData, unaligned: bool) -> dict[str, np.ndarray]:
    text, text_lengths = pad_arrays([s.text for s in split])
    audio, audio_lengths = pad_arrays([s.audio for s in split])
    vision, vision_lengths = pad_arrays([s.video for s in split])
    if not unaligned and not (
        np.array_equal(text_lengths, audio_lengths) and np.array_equal(text_lengths, vision_lengths)
    ):
        raise ValueError(
            f"split {split.name!r}: format 'mmsa_aligned' needs equal text, audio and video "
            "lengths per segment; write unaligned data as 'mmsa_unaligned'"
        )
    mask = (np.arange(text.shape[1]) < text_lengths[:, None]).astype(np.int64)
    # Word-piece ids are unknown for features that did not come from BERT: ids 0, real mask.
    text_bert = np.stack([np.zeros_like(mask), mask, np.zeros_like(mask)], axis=1)
    data = {
        "raw_text": np.array([" ".join(s.words or ()) for s in split]),
        "id": np.array(split.ids),
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        "regression_labels": split.labels,
    }
    if unaligned:
        data["audio_lengths"] = audio_lengths
        data["vision_lengths"] = vision_lengths
    return data


def write(dataset: MultimodalDataset, path: Path, format: str) -> None:
    """Write splits train/valid/test to the pickle ``path``; needs text features.

    ``text_bert`` gets zero word-piece ids with the true mask.
    """
    require_field(dataset, format, "text")
    unaligned = format == "mmsa_unaligned"
    atomic_dump({name: _split_arrays(dataset[name], unaligned) for name in SPLITS}, path)
