"""Reproduce the paper's claims C1-C4 over many seeds, with paired significance tests.

Modules: :mod:`._config` (a run and the grid, hashed for the cache), :mod:`._sources` (the data
sources), :mod:`._runner` (training one run, the cache, the parallel grid), :mod:`._stats` (bootstrap,
Wilcoxon, Mann–Whitney, verdicts), :mod:`._analysis` (weight selection, per-seed units, claims),
:mod:`._report` (markdown, JSON, Fig. 2), :mod:`._pipeline` (:func:`reproduce`, the one entry point).
"""

from mdmest.fusion.reproduce._config import ALL_MODELS, MIN_SEEDS, WEIGHT_GRID, GridSpec, RunConfig
from mdmest.fusion.reproduce._pipeline import KNOWN_MODELS, ReproduceError, reproduce
from mdmest.fusion.reproduce._runner import RunCache, run_grid, train_run

__all__ = [
    "ALL_MODELS",
    "KNOWN_MODELS",
    "MIN_SEEDS",
    "WEIGHT_GRID",
    "GridSpec",
    "ReproduceError",
    "RunCache",
    "RunConfig",
    "reproduce",
    "run_grid",
    "train_run",
]
