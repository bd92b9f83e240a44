"""The data sources of ``mdmest reproduce --data``: one function gives the splits of one run.

- a path (MAG-BERT pickle, MMSA aligned/unaligned pickle, MISA file or folder): the user's file with
  its own train/valid/test splits (a single-split file is divided 70/15/15 with the run's seed);
- ``mosi229`` (or ``mosi229:PATH``): the 229 real CMU-MOSI segments of ``../shared/data/mosi``,
  repeated K-fold cross-validation — fold ``f`` is the test split, fold ``f+1`` the validation split,
  the rest training; the seed draws the folds, so seeds × folds runs test every segment once per seed;
- ``planted:NOISE``: :func:`mdmest.fusion.data.synthetic.make_planted`, where the label is the only
  dependency between the modalities (expected direction: a dependency penalty helps);
- ``breast_cancer``: scikit-learn's shipped Wisconsin breast-cancer table as three views (mean,
  standard-error and worst features, 10 each; text = mean, audio = standard error, video = worst),
  label +1 benign / −1 malignant, stratified 60/20/20 split per seed, features standardised on the
  training split; segments of length 1 (model ``mlp``);
- ``synthetic:mosi`` / ``synthetic:mosei``: :func:`mdmest.fusion.data.make_synthetic`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from mdmest.fusion.data import MultimodalDataset, Segment, SplitData, load_for_training
from mdmest.fusion.data.synthetic import make_planted

__all__ = [
    "DEFAULT_MOSI229",
    "TABULAR_SOURCES",
    "backbone_note",
    "check_source",
    "default_folds",
    "load_run_data",
    "source_kind",
]

DEFAULT_MOSI229 = Path("../shared/data/mosi/dev_misa_format.pkl")
#: Sources whose views are tables (one step per segment): only the ``mlp`` model fits them.
TABULAR_SOURCES = ("breast_cancer",)


def source_kind(spec: str) -> str:
    """The kind of a source: mosi229, planted, breast_cancer, synthetic or file."""
    head = spec.split(":", 1)[0]
    if head in ("mosi229", "planted", "breast_cancer", "synthetic"):
        return head
    return "file"


def default_folds(spec: str) -> int:
    """5 for the cross-validated real MOSI segments, 0 (fixed splits) otherwise."""
    return 5 if source_kind(spec) == "mosi229" else 0


def _mosi229_path(spec: str) -> Path:
    _, _, rest = spec.partition(":")
    return Path(rest) if rest else DEFAULT_MOSI229


def check_source(spec: str) -> None:
    """Raise ``FileNotFoundError`` / ``ValueError`` before any training when ``spec`` cannot load."""
    kind = source_kind(spec)
    if kind == "mosi229":
        path = _mosi229_path(spec)
        if not path.exists():
            raise FileNotFoundError(f"no MOSI segments at {path} (give mosi229:PATH)")
    elif kind == "planted":
        try:
            noise = float(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise ValueError(
                f"planted data needs a noise level, e.g. planted:1.0; got {spec!r}"
            ) from None
        if not noise >= 0:
            raise ValueError(f"the noise level must be >= 0, got {spec!r}")
    elif kind == "file" and not Path(spec).exists():
        raise FileNotFoundError(f"no dataset at {spec}")


def backbone_note(model: str) -> str | None:
    """Why a MAG model cannot run here (its offline backbone is missing), or None."""
    if model not in ("mag_bert", "mag_xlnet"):
        return None
    try:
        from mdmest.fusion.models._mag_transformer import default_backbone_path

        default_backbone_path()
    except (FileNotFoundError, ImportError) as error:
        return f"{model} skipped: {error}"
    return None


@functools.lru_cache(maxsize=4)
def _mosi229_all(path: str, text: bool) -> SplitData:
    data = load_for_training(path, split_seed=0, text_features=False, log=lambda _: None)
    segments = [s for name in ("train", "valid", "test") for s in data[name].segments]
    split = SplitData(segments, "all")
    return split.with_text_features("minilm") if text else split


def _kfold(split: SplitData, seed: int, fold: int, folds: int) -> MultimodalDataset:
    if not 0 <= fold < folds or folds < 3:
        raise ValueError(f"fold must lie in [0, folds) with folds >= 3, got {fold} of {folds}")
    order = np.random.default_rng([seed, 229]).permutation(len(split))
    parts = np.array_split(order, folds)
    test, valid = parts[fold], parts[(fold + 1) % folds]
    train = np.concatenate([p for i, p in enumerate(parts) if i not in (fold, (fold + 1) % folds)])
    return MultimodalDataset(
        {
            "train": split.subset(train.tolist(), "train"),
            "valid": split.subset(valid.tolist(), "valid"),
            "test": split.subset(test.tolist(), "test"),
        },
        format="misa",
        source=f"mosi229 seed {seed} fold {fold}/{folds}",
        preset="mosi",
    )


@functools.lru_cache(maxsize=16)
def _breast_cancer(seed: int) -> MultimodalDataset:
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    x = table.data.astype(np.float64)
    y = np.where(table.target == 1, 1.0, -1.0)
    rng = np.random.default_rng([seed, 569])
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for value in (-1.0, 1.0):  # stratified 60/20/20
        idx = rng.permutation(np.flatnonzero(y == value))
        a, b = round(0.6 * len(idx)), round(0.8 * len(idx))
        parts["train"] += idx[:a].tolist()
        parts["valid"] += idx[a:b].tolist()
        parts["test"] += idx[b:].tolist()
    mean, std = x[parts["train"]].mean(0), x[parts["train"]].std(0) + 1e-8
    x = ((x - mean) / std).astype(np.float32)
    splits = {}
    for name, idx in parts.items():
        segments = [
            Segment(
                id=f"bc-{i:03d}",
                label=float(y[i]),
                text=x[i, 0:10][None],
                audio=x[i, 10:20][None],
                video=x[i, 20:30][None],
            )
            for i in idx
        ]
        splits[name] = SplitData(segments, name)
    return MultimodalDataset(splits, format="sklearn", source="breast_cancer", preset=None)


@functools.lru_cache(maxsize=4)
def _file(spec: str, seed: int, text: bool, options: tuple) -> MultimodalDataset:
    return load_for_training(
        spec, split_seed=seed, options=dict(options), text_features=text, log=lambda _: None
    )


def load_run_data(
    spec: str,
    *,
    seed: int,
    fold: int = -1,
    folds: int = 0,
    text_features: bool = True,
    options: dict[str, Any] | None = None,
) -> MultimodalDataset:
    """The train/valid/test splits of one run (cached per process)."""
    options = dict(options or {})
    kind = source_kind(spec)
    if kind == "mosi229":
        split = _mosi229_all(str(_mosi229_path(spec)), text_features)
        return _kfold(split, seed, fold, folds)
    if kind == "planted":
        return make_planted(float(spec.split(":", 1)[1]), seed=seed, **options)
    if kind == "breast_cancer":
        return _breast_cancer(seed)
    frozen = tuple(
        sorted((k, v if not isinstance(v, list) else tuple(v)) for k, v in options.items())
    )
    return _file(spec, seed, text_features, frozen)
