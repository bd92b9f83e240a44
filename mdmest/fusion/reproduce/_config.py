"""What one run of the reproduction grid is (:class:`RunConfig`), its hash, and the grid itself.

A run is one training of one model with one penalty and one penalty weight, on one seed (and one
cross-validation fold), with the epoch chosen on the validation split. The weight of each penalty
is chosen afterwards, per (model, penalty, seed), among :data:`WEIGHT_GRID` on the validation split
(:mod:`mdmest.fusion.reproduce._report`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALL_MODELS",
    "KEEP",
    "MIN_SEEDS",
    "PENALTY_NAMES",
    "TABLE_METRICS",
    "WEIGHT_GRID",
    "GridSpec",
    "RunConfig",
]

#: Models of Tables 1-2; "mlp" (tabular views) is added for the breast-cancer source.
ALL_MODELS = ("ef_lstm", "mfn", "lmf", "tfn", "mag_bert", "mag_xlnet")
PENALTY_NAMES = ("none", "dv", "f", "wasserstein")
#: Penalty weights tried per penalty; the one with the best validation metric is kept.
WEIGHT_GRID = (0.01, 0.1, 1.0)
#: Fewer seeds make a Wilcoxon signed-rank test unable to reach p < 0.05 (n = 5 gives p >= 0.0625).
MIN_SEEDS = 5
#: Tables 1-2: (metric key, column title, higher is better).
TABLE_METRICS = (
    ("acc7", "Acc-7", True),
    ("acc2_has0", "Acc-2 (has0)", True),
    ("acc2_non0", "Acc-2 (non0)", True),
    ("f1_non0", "F1 (non0)", True),
    ("mae", "MAE", False),
    ("corr", "Corr", True),
)
#: Fig. 2: text dropped at inference; name of what is kept → modalities dropped.
KEEP = {"audio+video": ("text",), "audio": ("text", "video"), "video": ("text", "audio")}


@dataclass(frozen=True)
class RunConfig:
    """One training run of the grid; its :meth:`key` names its cache file.

    ``fold`` is -1 for data sources with fixed splits, else the cross-validation fold (with ``seed``
    as the repetition: the folds are drawn with the seed). ``epochs``, ``patience``,
    ``max_steps_per_epoch``, ``data_options`` and ``model_kwargs`` (constructor keywords that
    replace the preset's) are part of the hash, so changing them never reuses a run made with other
    settings.
    """

    data: str
    model: str
    penalty: str
    weight: float
    seed: int
    fold: int = -1
    folds: int = 0
    epochs: int = 20
    patience: int = 5
    max_steps_per_epoch: int | None = None
    select_on: str = "mae"
    measure_kwargs: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["model_kwargs"]:  # the preset: the key of the runs made before the field
            del out["model_kwargs"]
        return out

    def key(self) -> str:
        """SHA-256 (first 16 hex digits) of the configuration's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def name(self) -> str:
        fold = f"-fold{self.fold}" if self.fold >= 0 else ""
        return f"{self.model}-{self.penalty}-w{self.weight:g}-seed{self.seed}{fold}"

    def __hash__(self) -> int:  # dict fields: hash the canonical key instead
        return hash(self.key())


@dataclass
class GridSpec:
    """The grid asked for on the command line; :meth:`runs` lists its :class:`RunConfig`."""

    data: str
    models: tuple[str, ...]
    penalties: tuple[str, ...] = PENALTY_NAMES
    seeds: tuple[int, ...] = tuple(range(10))
    weights: tuple[float, ...] = WEIGHT_GRID
    folds: int = 0
    epochs: int = 20
    patience: int = 5
    max_steps_per_epoch: int | None = None
    measure_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def runs(self) -> list[RunConfig]:
        """Every run, seed-major so that an interrupted grid has whole seeds done first."""
        folds = range(self.folds) if self.folds else (-1,)
        out = []
        for seed in self.seeds:
            for fold in folds:
                for model in self.models:
                    for penalty in self.penalties:
                        weights = (0.0,) if penalty == "none" else self.weights
                        for weight in weights:
                            out.append(
                                RunConfig(
                                    data=self.data,
                                    model=model,
                                    penalty=penalty,
                                    weight=float(weight),
                                    seed=seed,
                                    fold=fold,
                                    folds=self.folds,
                                    epochs=self.epochs,
                                    patience=self.patience,
                                    max_steps_per_epoch=self.max_steps_per_epoch,
                                    measure_kwargs=dict(self.measure_kwargs.get(penalty, {})),
                                    data_options=dict(self.data_options),
                                    model_kwargs=dict(self.model_kwargs.get(model, {})),
                                )
                            )
        return out
