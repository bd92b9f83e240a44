"""The split of the rows into training, validation and held-out parts; the fewest rows it needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["minimum_rows", "VALIDATE_BELOW_ROWS", "VALIDATION_FRACTION"]

#: With fewer training rows than this, a ``VALIDATION_FRACTION`` of them is set aside to choose the
#: critic kept (:mod:`mdmest.estimation.training`). Chosen on 3 Gaussian views at TC 1 nat, 50 to
#: 2000 rows (see docs/core.md, section "`estimate` — a value from arrays", "Few rows").
VALIDATE_BELOW_ROWS = 4000
VALIDATION_FRACTION = 0.25


@dataclass(frozen=True)
class _Split:
    """Row positions of the training, validation and held-out parts."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.validation), len(self.test)


def _part_sizes(n: int, test_fraction: float) -> tuple[int, int, int]:
    n_test = int(round(n * test_fraction))
    rest = n - n_test
    n_val = int(round(rest * VALIDATION_FRACTION)) if rest < VALIDATE_BELOW_ROWS else 0
    return rest - n_val, n_val, n_test


def _sizes_ok(sizes: tuple[int, int, int], num_views: int) -> bool:
    # Each part is one batch somewhere (the held-out value, a validation check), and the shifted
    # sampler needs at least as many rows as views.
    need = max(2, num_views)
    n_train, n_val, n_test = sizes
    return n_train >= need and n_test >= need and (n_val == 0 or n_val >= need)


def minimum_rows(num_views: int, test_fraction: float = 0.2) -> int:
    """The fewest rows :func:`~mdmest.estimate` accepts for ``num_views`` views and this split."""
    # Every part grows with n: double past the minimum, then bisect.
    high = 2
    while not _sizes_ok(_part_sizes(high, test_fraction), num_views):
        high *= 2
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        if _sizes_ok(_part_sizes(middle, test_fraction), num_views):
            high = middle
        else:
            low = middle
    return high


def _split(n: int, num_views: int, test_fraction: float, generator: torch.Generator) -> _Split:
    """Held-out rows first in one permutation drawn from ``generator``, then validation, then
    training (with no validation part, the split of earlier releases for the same seed)."""
    n_train, n_val, n_test = _part_sizes(n, test_fraction)
    if not _sizes_ok((n_train, n_val, n_test), num_views):
        raise ValueError(
            f"{n} rows are too few: with {num_views} views and test_fraction={test_fraction}, "
            f"estimate needs at least {minimum_rows(num_views, test_fraction)} rows"
        )
    order = torch.randperm(n, generator=generator, device=generator.device).cpu().numpy()
    return _Split(
        train=order[n_test + n_val :],
        validation=order[n_test : n_test + n_val],
        test=order[:n_test],
    )
