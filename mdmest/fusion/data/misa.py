"""The MISA / CMU-MultimodalSDK list format (``../data/README.md``; 229 real MOSI segments).

A pickle of a list of ``((word_ids, visual, acoustic, words), label (1, 1), segment)``, one feature row
per word: one file reads as one split, ``"all"``; a folder with ``train.pkl``, ``dev.pkl`` (or
``valid.pkl``) and ``test.pkl`` reads as train/valid/test. The word ids index a GloVe vocabulary that
is not shipped, so they are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdmest.fusion.data._word_lists import features_per_item, read_items, to_items
from mdmest.fusion.data.dataset import MultimodalDataset
from mdmest.fusion.data.safe_pickle import atomic_dump, safe_load
from mdmest.fusion.data.segments import SplitData
from mdmest.fusion.data.validation import DatasetFormatError, check_dataset_file, require_field

__all__ = ["FOLDER_FILES", "FORMATS", "detect", "read", "read_folder", "write"]

FORMATS = ("misa",)
"""The format names this module reads and writes."""

FOLDER_FILES = {"train": "train.pkl", "valid": "dev.pkl", "test": "test.pkl"}
"""The file of each split in a MISA folder (``valid.pkl`` is read too when ``dev.pkl`` is absent)."""


def detect(content: Any) -> str | None:
    """``"misa"`` for a list whose items hold (word_ids, visual, acoustic, words), else None."""
    return "misa" if isinstance(content, list) and features_per_item(content) == 4 else None


def read(content: Any, format: str = "misa") -> dict[str, SplitData]:
    """The one split ``"all"`` of a loaded MISA pickle."""
    return {"all": read_items(content, "all")}


def read_folder(path: Path) -> tuple[str, dict[str, SplitData]]:
    """The format and splits train/valid/test of a MISA folder.

    The format is ``"misa"``, or ``"mag_bert"`` when the files hold MAG-BERT's 3-feature items.
    """
    splits, detected = {}, "misa"
    for name, filename in FOLDER_FILES.items():
        candidates = [path / filename] + ([path / "valid.pkl"] if name == "valid" else [])
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{path}: a dataset folder needs train.pkl, dev.pkl (or valid.pkl) and test.pkl; "
                f"missing {filename}"
            )
        check_dataset_file(found)
        content = safe_load(found)
        if not isinstance(content, list):
            raise DatasetFormatError(f"{found}: expected a list of segments, got {type(content)}")
        detected = detect(content) or "mag_bert"
        splits[name] = read_items(content, name)
    return detected, splits


def write(dataset: MultimodalDataset, path: Path, format: str = "misa") -> None:
    """Write splits train/valid/test to the folder ``path`` (:data:`FOLDER_FILES`).

    Needs words, one per audio and video row; word ids number the words in order of appearance.
    """
    require_field(dataset, format, "words")
    vocabulary: dict[str, int] = {}
    content = {name: to_items(dataset[name], True, vocabulary) for name in FOLDER_FILES}
    path.mkdir(parents=True, exist_ok=True)
    for name, filename in FOLDER_FILES.items():
        atomic_dump(content[name], path / filename)
