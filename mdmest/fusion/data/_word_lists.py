"""Word-aligned segment lists, the item layout that the MAG-BERT and MISA formats share.

An item is ``((words, visual, acoustic), label, segment)`` (MAG-BERT) or
``((word_ids, visual, acoustic, words), label, segment)`` (MISA / CMU-MultimodalSDK), with one row of
``visual`` and ``acoustic`` per word.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mdmest.fusion.data.segments import Segment, SplitData
from mdmest.fusion.data.validation import DatasetFormatError, as_label, as_matrix, as_words, where

__all__ = ["features_per_item", "read_items", "to_items"]


def features_per_item(content: list) -> int | None:
    """How many features the first item's feature tuple holds (3 or 4), None when unknown."""
    first = content[0] if content else None
    features = first[0] if isinstance(first, tuple | list) and first else None
    return len(features) if isinstance(features, tuple | list) else None


def read_items(items: Any, split: str) -> SplitData:
    """The segments of a list of items in either layout."""
    if not isinstance(items, list):
        raise DatasetFormatError(f"split {split!r}: expected a list of segments, got {type(items)}")
    segments = []
    for index, item in enumerate(items):
        features = item[0] if isinstance(item, tuple | list) and len(item) == 3 else None
        if not isinstance(features, tuple | list) or len(features) not in (3, 4):
            raise DatasetFormatError(
                f"{where(split, 'segment', index)}: expected ((words, visual, acoustic) or "
                "(word_ids, visual, acoustic, words), label, segment)"
            )
        words = features[0] if len(features) == 3 else features[3]
        words = as_words(words, split, "words", index)
        visual = as_matrix(features[1], split, "visual", index)
        acoustic = as_matrix(features[2], split, "acoustic", index, neg_inf_to_zero=True)
        for key, array in (("visual", visual), ("acoustic", acoustic)):
            if array.shape[0] != len(words):
                raise DatasetFormatError(
                    f"{where(split, key, index)}: expected one row per word ({len(words)}), "
                    f"got {array.shape[0]}"
                )
        segments.append(
            Segment(
                id=str(item[2]),
                label=as_label(item[1], split, "label", index),
                audio=acoustic,
                video=visual,
                words=words,
            )
        )
    return SplitData(segments, split)


def to_items(split: SplitData, with_word_ids: bool, vocabulary: dict[str, int]) -> list:
    """The items of a split; ``with_word_ids`` gives the MISA layout, ids from ``vocabulary``."""
    items = []
    for index, s in enumerate(split):
        if not s.audio.shape[0] == s.video.shape[0] == len(s.words):
            raise ValueError(
                f"{where(split.name, 'words', index)}: word-aligned formats need one audio and "
                f"video row per word, got {len(s.words)} words, audio {s.audio.shape}, "
                f"video {s.video.shape}"
            )
        label = np.array([[s.label]], dtype=np.float32)
        if with_word_ids:
            word_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in s.words])
            items.append(((word_ids, s.video, s.audio, list(s.words)), label, s.id))
        else:
            items.append(((list(s.words), s.video, s.audio), label, s.id))
    return items
