"""The split of the rows into training, validation and test parts; the fewest rows it needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mdmest.estimation.config import EstimateConfig

__all__ = ["minimum_rows", "part_sizes"]

_DEFAULTS = EstimateConfig()


@dataclass(frozen=True)
class _Split:
    """Row positions of the training, validation and test parts."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.validation), len(self.test)


def part_sizes(
    n: int, test_fraction: float = 0.2, config: EstimateConfig = _DEFAULTS
) -> tuple[int, int, int]:
    """The training, validation and test rows of ``estimate`` on ``n`` rows.

    ``test_fraction`` of the rows are the test part; of the rest, ``config.validation_fraction``
    are validation rows, or ``config.few_rows_validation_fraction`` below ``config.few_rows``.

    >>> part_sizes(10_000)
    (7000, 1000, 2000)
    >>> part_sizes(1000)
    (600, 200, 200)
    """
    n_test = int(round(n * test_fraction))
    rest = n - n_test
    share = (
        config.few_rows_validation_fraction
        if rest < config.few_rows
        else config.validation_fraction
    )
    n_val = int(round(rest * share))
    return rest - n_val, n_val, n_test


def _sizes_ok(sizes: tuple[int, int, int], num_views: int) -> bool:
    # Each part is one batch somewhere (a value, a validation check), and the shifted sampler
    # needs at least as many rows as views; the validation rows are halved (tuning, choice).
    need = max(2, num_views)
    n_train, n_val, n_test = sizes
    return min(n_train, n_test) >= need and n_val >= 2 * need


def minimum_rows(
    num_views: int, test_fraction: float = 0.2, config: EstimateConfig = _DEFAULTS
) -> int:
    """The fewest rows ``estimate`` accepts for ``num_views`` views and this split."""
    # Every part grows with n: double past the minimum, then bisect.
    high = 2
    while not _sizes_ok(part_sizes(high, test_fraction, config), num_views):
        high *= 2
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        if _sizes_ok(part_sizes(middle, test_fraction, config), num_views):
            high = middle
        else:
            low = middle
    return high


def _split(
    n: int,
    num_views: int,
    test_fraction: float,
    generator: torch.Generator,
    config: EstimateConfig = _DEFAULTS,
) -> _Split:
    """Test rows first in one permutation drawn from ``generator``, then validation, then
    training."""
    n_train, n_val, n_test = part_sizes(n, test_fraction, config)
    if not _sizes_ok((n_train, n_val, n_test), num_views):
        raise ValueError(
            f"{n} rows are too few: with {num_views} views and test_fraction={test_fraction}, "
            f"estimate needs at least {minimum_rows(num_views, test_fraction, config)} rows"
        )
    order = torch.randperm(n, generator=generator, device=generator.device).cpu().numpy()
    return _Split(
        train=order[n_test + n_val :],
        validation=order[n_test : n_test + n_val],
        test=order[:n_test],
    )
