"""Restricted pickle reading and atomic pickle writing for the dataset files of the field.

A pickle runs code when loaded. :func:`safe_load` only resolves the globals that rebuild numpy
arrays and builtin containers, so a hostile file fails with :class:`UnsafePickleError` before
anything runs.
"""

from __future__ import annotations

import codecs
import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mdmest.io import atomic_open

__all__ = ["ALLOWED_GLOBALS", "PickleReadError", "UnsafePickleError", "atomic_dump", "safe_load"]

try:  # numpy >= 2 keeps the reconstruction functions in numpy._core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for raw bytes, limited to latin-1."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_NUMPY_GLOBALS: dict[str, Any] = {
    "multiarray._reconstruct": _multiarray._reconstruct,
    "multiarray.scalar": _multiarray.scalar,
    "numeric._frombuffer": _numeric._frombuffer,
}
_CONTAINERS = {
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
}

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    **{
        (f"{package}.{name.split('.')[0]}", name.split(".")[1]): obj
        for package in ("numpy.core", "numpy._core")
        for name, obj in _NUMPY_GLOBALS.items()
    },
    **{
        (module, name): obj
        for module in ("builtins", "__builtin__")
        for name, obj in _CONTAINERS.items()
    },
}
"""The only globals :func:`safe_load` resolves: numpy array rebuilding and builtin containers."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside :data:`ALLOWED_GLOBALS`; nothing in it was run."""


class PickleReadError(pickle.UnpicklingError, ValueError):
    """A file could not be read as a pickle: it is empty, truncated, corrupt or not a pickle."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused global '{module}.{name}': only numpy array reconstruction and builtin "
                "containers may be loaded from a dataset pickle"
            ) from None


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Load a pickle that may only hold numpy arrays, numpy scalars and builtin containers.

    Parameters
    ----------
    path : path-like
        The pickle file. Python 2 pickles are read with ``encoding="latin1"``, as numpy needs.

    Returns
    -------
    object
        The unpickled object.

    Raises
    ------
    UnsafePickleError
        If the pickle references another global (``os.system``, a class, ...); the message names it.
    PickleReadError
        If the file is empty, truncated or not a pickle; the message names the file. It is both a
        ``pickle.UnpicklingError`` and a ``ValueError``.
    """
    path = Path(path)
    with path.open("rb") as stream:
        if not stream.peek(1):
            raise PickleReadError(f"{path} is empty, not a pickle")
        try:
            return _RestrictedUnpickler(stream, encoding="latin1").load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from None
        except Exception as exc:
            raise PickleReadError(
                f"{path}: could not read the pickle, it is truncated or corrupt "
                f"({type(exc).__name__}: {exc})"
            ) from exc


def atomic_dump(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Pickle ``obj`` to ``path`` atomically (see :func:`mdmest.io.atomic_open`).

    A failure leaves neither a partial ``path`` nor the temporary file behind.
    """
    with atomic_open(path) as stream:
        pickle.dump(obj, stream, protocol=4)
    return Path(path)
