"""The file formats of the field: detection and reading dispatched over the format modules, and
:func:`write_dataset`.

Each format module (:mod:`.mag_bert`, :mod:`.mmsa`, :mod:`.misa`) holds its ``FORMATS`` names and
``detect(content)``, ``read(content, format)`` and ``write(dataset, path, format)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mdmest._validation import check_choice
from mdmest.fusion.data import mag_bert, misa, mmsa
from mdmest.fusion.data.dataset import SPLITS, MultimodalDataset
from mdmest.fusion.data.safe_pickle import safe_load
from mdmest.fusion.data.segments import SplitData
from mdmest.fusion.data.validation import DatasetFormatError, check_dataset_file

__all__ = ["FORMATS", "WRITABLE", "detect", "read_path", "write_dataset"]

_MODULES = {name: module for module in (mag_bert, mmsa, misa) for name in module.FORMATS}

FORMATS = ("auto", *_MODULES, "synthetic")
"""Values of ``format`` in :func:`~mdmest.fusion.data.load_dataset`."""

WRITABLE = tuple(_MODULES)
"""Values of ``format`` in :func:`write_dataset`: the file formats."""


def detect(content: Any, path: Path) -> str:
    """The format of a loaded pickle, from its structure; a DatasetFormatError if none matches."""
    for module in (mag_bert, mmsa, misa):
        detected = module.detect(content)
        if detected is not None:
            return detected
    described = sorted(content) if isinstance(content, Mapping) else type(content).__name__
    raise DatasetFormatError(
        f"{path}: not a known dataset format (got {described}); expected a dict with splits "
        "train/dev/test (MAG-BERT) or train/valid/test (MMSA), or a list of segments (MISA)"
    )


def read_path(path: Path) -> tuple[str, dict[str, SplitData]]:
    """The detected format and the splits of a dataset file or MISA folder (which must exist)."""
    if path.is_dir():
        return misa.read_folder(path)
    check_dataset_file(path)
    content = safe_load(path)
    detected = detect(content, path)
    try:
        return detected, _MODULES[detected].read(content, detected)
    except DatasetFormatError as error:
        # The readers name the split, key and segment; say which file too.
        raise DatasetFormatError(f"{path} ({detected} format): {error}") from None


def write_dataset(dataset: MultimodalDataset, path: str | os.PathLike[str], format: str) -> Path:
    """Write a dataset with splits train/valid/test in one of the field's formats.

    Each file is written atomically (a temporary file in the same folder, then ``os.replace``), so a
    failure leaves no partial file.

    Parameters
    ----------
    dataset : MultimodalDataset
        Needs splits ``"train"``, ``"valid"``, ``"test"``. MAG-BERT and MISA need words, one per
        audio and video row; MMSA needs text features.
    path : path-like
        The pickle to write; for ``"misa"`` a folder that receives ``train.pkl``, ``dev.pkl``,
        ``test.pkl``.
    format : {"mag_bert", "mmsa_aligned", "mmsa_unaligned", "misa"}
        MMSA files get zero word-piece ids in ``text_bert`` (with the true mask).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    check_choice("format", format, WRITABLE)
    missing = [name for name in SPLITS if name not in dataset]
    if missing:
        raise ValueError(f"writing needs splits train, valid, test; missing {missing}")
    path = Path(path)
    _MODULES[format].write(dataset, path, format)
    return path
