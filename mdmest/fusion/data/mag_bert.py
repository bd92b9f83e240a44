"""The MAG-BERT format (WasifurRahman/BERT_multimodal_transformer, ``mosi.pkl`` / ``mosei.pkl``).

A dict with splits ``"train"``, ``"dev"``, ``"test"``, each a list of
``((words, visual (L, 47 or 35), acoustic (L, 74)), label, segment)``, one feature row per word; ``dev``
becomes the split ``"valid"``. A bare list of such items reads as one split, ``"all"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mdmest.fusion.data._word_lists import features_per_item, read_items, to_items
from mdmest.fusion.data.dataset import MultimodalDataset
from mdmest.fusion.data.safe_pickle import atomic_dump
from mdmest.fusion.data.segments import SplitData
from mdmest.fusion.data.validation import require_field

__all__ = ["FORMATS", "detect", "read", "write"]

FORMATS = ("mag_bert",)
"""The format names this module reads and writes."""

_FILE_KEYS = {"train": "train", "valid": "dev", "test": "test"}  # split name -> key in the file


def detect(content: Any) -> str | None:
    """``"mag_bert"`` for a dict with splits train/dev/test or a list of 3-feature items, else None."""
    if isinstance(content, list):
        return None if features_per_item(content) == 4 else "mag_bert"
    if isinstance(content, Mapping) and set(_FILE_KEYS.values()) <= set(content):
        return "mag_bert"
    return None


def read(content: Any, format: str = "mag_bert") -> dict[str, SplitData]:
    """The splits of a loaded MAG-BERT pickle (``detect(content)`` must have said so)."""
    if isinstance(content, list):
        return {"all": read_items(content, "all")}
    return {name: read_items(content[key], name) for name, key in _FILE_KEYS.items()}


def write(dataset: MultimodalDataset, path: Path, format: str = "mag_bert") -> None:
    """Write splits train/valid/test to the pickle ``path``; needs words, one per audio/video row."""
    require_field(dataset, format, "words")
    atomic_dump({key: to_items(dataset[name], False, {}) for name, key in _FILE_KEYS.items()}, path)
