"""The :class:`Task` interface that every ground-truth task implements, and helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from mdmest.reference import block_slices

__all__ = ["Task"]


class Task(ABC):
    """A joint distribution of K views whose total correlation is known.

    Subclasses set ``name`` (str), ``dims`` (tuple of int) and ``total_correlation`` (float, nats)
    and implement :meth:`sample`.
    """

    name: str
    dims: tuple[int, ...]
    total_correlation: float

    @property
    def mutual_information(self) -> float:
        """Alias of ``total_correlation`` (the same quantity for two views)."""
        return self.total_correlation

    @property
    def num_views(self) -> int:
        """K, the number of views."""
        return len(self.dims)

    @abstractmethod
    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Draw n joint rows; returns K float32 arrays of shapes (n, d_k), fixed by ``seed``."""


def _check_n(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return int(n)


def _split(x: np.ndarray, dims: Sequence[int]) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(x[:, b], dtype=np.float32) for b in block_slices(dims))


def _fmt(value: float) -> str:
    """Short, stable text for a number in a task name (0.5, 1, 0.333)."""
    return f"{float(value):.4g}"
