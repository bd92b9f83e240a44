"""Entry points that read a dataset: :func:`load_dataset`, and :func:`load_for_training`, which
also makes it ready for training (train/valid/test splits, text features)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mdmest._validation import check_choice
from mdmest.fusion.data.dataset import MultimodalDataset, infer_preset
from mdmest.fusion.data.formats import FORMATS, read_path
from mdmest.fusion.data.synthetic import SYNTHETIC_PREFIX, make_synthetic
from mdmest.fusion.data.validation import DatasetFormatError

__all__ = ["load_dataset", "load_for_training"]

_TRAINING_SPLITS = ("train", "valid")


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def load_dataset(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    text_features: str | None = None,
    **synthetic_options: Any,
) -> MultimodalDataset:
    """Load a multimodal sentiment dataset.

    Pickles are read with a restricted unpickler that resolves only numpy array reconstruction and
    builtin containers; any other global raises :class:`UnsafePickleError` before anything runs.

    Parameters
    ----------
    path : path-like or str
        - a MAG-BERT pickle (dict ``train``/``dev``/``test``; ``dev`` becomes ``"valid"``),
        - an MMSA pickle, aligned or unaligned (dict ``train``/``valid``/``test`` of arrays),
        - a MISA/SDK pickle (a list of segments): one split, named ``"all"``; divide it with
          :meth:`MultimodalDataset.split`,
        - a folder with ``train.pkl``, ``dev.pkl`` (or ``valid.pkl``) and ``test.pkl`` in MISA
          format,
        - ``"synthetic:mosi"`` or ``"synthetic:mosei"``: :func:`make_synthetic` in memory.
    format : str
        One of :data:`~mdmest.fusion.data.FORMATS`; ``"auto"`` detects it from the content. A named format that does not
        match the content raises.
    text_features : {"minilm"}, optional
        Compute word-level text features from the words (see
        :meth:`MultimodalDataset.with_text_features`), e.g. for the MAG-BERT and MISA files, which
        have words only.
    **synthetic_options
        Keyword arguments of :func:`make_synthetic`, only for ``"synthetic:..."`` paths.

    Returns
    -------
    MultimodalDataset
        Its ``preset`` is the synthetic ``kind``, or for a file the corpus that its feature widths
        belong to (see :class:`MultimodalDataset`), else None.

    Raises
    ------
    FileNotFoundError
        Nothing exists at ``path``, or a folder lacks one of its files.
    UnsafePickleError
        The pickle references a global other than numpy reconstruction or builtin containers.
    PickleReadError
        The pickle is truncated or corrupt (the message names the file); a ``ValueError`` and a
        ``pickle.UnpicklingError``.
    DatasetFormatError
        The file is empty or another kind of file (a NumPy ``.npz`` or ``.npy``, HDF5, a zip
        archive); unknown structure, missing keys, wrong shapes or non-finite values (the message
        names the split, key and segment index).

    Examples
    --------
    >>> data = load_dataset("synthetic:mosi", n_train=4, n_valid=2, n_test=2)
    >>> sorted(data), data["train"].d_audio
    (['test', 'train', 'valid'], 74)
    """
    check_choice("format", format, FORMATS)
    text = str(path)
    if text.startswith(SYNTHETIC_PREFIX):
        if format not in ("auto", "synthetic"):
            raise ValueError(f"{text!r} is synthetic data, format {format!r} does not apply")
        dataset = make_synthetic(text[len(SYNTHETIC_PREFIX) :], **synthetic_options)
    else:
        if synthetic_options:
            raise TypeError(
                f"unexpected keyword arguments {sorted(synthetic_options)}: they apply to "
                "'synthetic:...' paths only"
            )
        if format == "synthetic":
            raise ValueError(
                f"format 'synthetic' needs a path 'synthetic:mosi|mosei', got {text!r}"
            )
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no dataset at {path}")
        detected, splits = read_path(path)
        if format not in ("auto", detected):
            raise DatasetFormatError(
                f"{path}: format {format!r} requested, the content is {detected!r}"
            )
        _, d_audio, d_video = next(iter(splits.values())).dims
        dataset = MultimodalDataset(
            splits, format=detected, source=str(path), preset=infer_preset(d_audio, d_video)
        )
    return dataset if text_features is None else dataset.with_text_features(text_features)


def load_for_training(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    split_seed: int = 0,
    options: Mapping[str, Any] | None = None,
    text_features: bool = False,
    log: Callable[[str], None] | None = None,
) -> MultimodalDataset:
    """Load a dataset ready for training: splits train and valid (and test), text features if asked.

    A dataset with one split (a single MISA file, 229 real MOSI segments) is divided 70/15/15 into
    train/valid/test with ``split_seed`` (:meth:`MultimodalDataset.split`). When ``text_features`` is
    true and the data has words only, the words are embedded with the offline MiniLM
    (:meth:`MultimodalDataset.with_text_features`). Both steps are reported through ``log``.

    Parameters
    ----------
    path : path-like or str
        What :func:`load_dataset` reads: a file, a MISA folder, ``"synthetic:mosi"`` /
        ``"synthetic:mosei"``.
    format : str
        One of :data:`~mdmest.fusion.data.FORMATS`.
    split_seed : int
        Seed that divides a single-split dataset.
    options : mapping, optional
        Keyword arguments of :func:`~mdmest.fusion.data.make_synthetic` (synthetic paths only).
    text_features : bool
        Compute MiniLM word features when the data has none (every model but MAG needs them).
    log : callable, optional
        Receives one line per note; by default the notes are printed to stderr.

    Returns
    -------
    MultimodalDataset
        With splits ``"train"`` and ``"valid"``, usually ``"test"``; ``preset`` as
        :func:`load_dataset` sets it.

    Raises
    ------
    ValueError
        The data lacks a train or valid split (and has more than one split); and what
        :func:`load_dataset` raises.

    Examples
    --------
    >>> notes = []
    >>> sizes = {"n_train": 8, "n_valid": 2, "n_test": 2}
    >>> data = load_for_training("synthetic:mosi", options=sizes, log=notes.append)
    >>> sorted(data), data.preset, notes
    (['test', 'train', 'valid'], 'mosi', [])
    """
    log = _print_to_stderr if log is None else log
    dataset = load_dataset(path, format, **dict(options or {}))
    if len(dataset) == 1:
        (name,) = dataset
        dataset = dataset.split(seed=split_seed)
        sizes = "/".join(str(len(dataset[s])) for s in ("train", "valid", "test"))
        log(f"one split ({name!r}) divided into train/valid/test = {sizes} with seed {split_seed}")
    missing = [split for split in _TRAINING_SPLITS if split not in dataset]
    if missing:
        raise ValueError(f"{path} has splits {list(dataset)}; training needs {missing}")
    if text_features and dataset.d_text is None:
        log("embedding the words with MiniLM (offline) ...")
        dataset = dataset.with_text_features("minilm")
    return dataset
