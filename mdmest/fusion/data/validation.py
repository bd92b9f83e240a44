"""Checks of what a dataset file holds: every message names the split, the key and the segment.

:class:`DatasetFormatError` is what the readers raise on bad content; the ``as_*`` helpers turn one
raw value of a file into the checked value of a :class:`~mdmest.fusion.data.segments.Segment`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EXPECTED_INPUT",
    "DatasetFormatError",
    "as_label",
    "as_matrix",
    "as_words",
    "check_dataset_file",
    "require_field",
    "where",
]

EXPECTED_INPUT = (
    "a MAG-BERT, MMSA or MISA pickle file or folder, or synthetic:mosi / synthetic:mosei"
)
"""What a dataset path may name, as error messages say it."""

# Other kinds of file a user may pass by mistake, by their first bytes.
_NUMPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# How a pickle of a container or a numpy array begins: PROTO (protocols 2-5), or for protocols 0-1 MARK,
# EMPTY_LIST, EMPTY_DICT, EMPTY_TUPLE or GLOBAL.
_PICKLE_FIRST_BYTES = b"\x80(]})c"


class DatasetFormatError(ValueError):
    """A dataset file or segment does not have the expected structure, shape or values."""


def where(split: str, key: str, index: int | None = None) -> str:
    """``"split 'train', key 'audio', index 2"``: the place an error message points at."""
    location = f"split {split!r}, key {key!r}"
    return location if index is None else f"{location}, index {index}"


def as_matrix(
    value: Any, split: str, key: str, index: int, *, neg_inf_to_zero: bool = False
) -> np.ndarray:
    """A finite float32 (rows, features) array with at least one row, or a DatasetFormatError."""
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[0] < 1 or not np.issubdtype(array.dtype, np.number):
        raise DatasetFormatError(
            f"{where(split, key, index)}: expected a numeric (rows >= 1, features) array, "
            f"got {array.dtype} of shape {array.shape}"
        )
    array = array.astype(np.float32, copy=False)
    if neg_inf_to_zero and np.isneginf(array).any():
        array = np.where(np.isneginf(array), np.float32(0.0), array)
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        row, column = bad[0]
        raise DatasetFormatError(
            f"{where(split, key, index)}: {bad.shape[0]} non-finite values, first "
            f"{array[row, column]} at row {row}, column {column}"
        )
    return array


def as_label(value: Any, split: str, key: str, index: int) -> float:
    """One finite number (a scalar or any array of size 1), or a DatasetFormatError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.full(2, np.nan)
    if array.size != 1 or not np.isfinite(array).all():
        raise DatasetFormatError(
            f"{where(split, key, index)}: expected one finite number, got {value!r}"
        )
    return float(array.reshape(-1)[0])


def as_words(value: Any, split: str, key: str, index: int) -> list[str]:
    """A list of str (from a list, tuple or array of str), or a DatasetFormatError."""
    words = list(value) if isinstance(value, list | tuple | np.ndarray) else None
    if words is None or not all(isinstance(w, str) for w in words):
        raise DatasetFormatError(
            f"{where(split, key, index)}: expected a list of str, got {value!r}"
        )
    return [str(w) for w in words]


def require_field(splits: Mapping[str, Sequence[Any]], format: str, key: str) -> None:
    """Raise a ValueError naming the first segment whose ``key`` is None (``format`` needs it)."""
    for name, split in splits.items():
        for index, segment in enumerate(split):
            if getattr(segment, key) is None:
                raise ValueError(f"{where(name, key, index)}: format {format!r} needs {key}")


def _kind_of_file(path: Path, head: bytes) -> str | None:
    """What a file that cannot be a dataset pickle is, from its first bytes; None if it may be one."""
    if head.startswith(_NUMPY_MAGIC):
        return "a NumPy array file (.npy, what `mdmest estimate` reads)"
    if head.startswith(_HDF5_MAGIC):
        return "an HDF5 file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if names and all(name.endswith(".npy") for name in names):
            return "a NumPy archive of arrays (.npz, what `mdmest estimate` reads)"
        return "a zip archive (a PyTorch checkpoint or another archive)"
    if head[0] not in _PICKLE_FIRST_BYTES:
        return f"a file that is not a pickle (it begins with {head!r})"
    return None


def check_dataset_file(path: str | Path) -> None:
    """Raise a DatasetFormatError when ``path`` is empty or plainly not a pickle of a dataset.

    Files that are recognised (NumPy ``.npz`` and ``.npy``, HDF5, zip) are named in the message;
    a file that does not begin the way a pickle of a container does is reported with its first
    bytes. A file that passes may still be a truncated or corrupt pickle.

    Examples
    --------
    >>> import tempfile, pathlib, numpy
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "views.npz"
    >>> numpy.savez(file, x=numpy.zeros(3))
    >>> try:
    ...     check_dataset_file(file)
    ... except DatasetFormatError as error:
    ...     print(str(error).split(" is ", 1)[1].split(";")[0])
    a NumPy archive of arrays (.npz, what `mdmest estimate` reads), not a dataset
    """
    path = Path(path)
    with path.open("rb") as stream:
        head = stream.read(len(_HDF5_MAGIC))
    kind = "an empty file" if not head else _kind_of_file(path, head)
    if kind is not None:
        raise DatasetFormatError(f"{path} is {kind}, not a dataset; expected {EXPECTED_INPUT}")
