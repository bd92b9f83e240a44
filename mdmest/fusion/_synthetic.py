"""Synthetic CMU-MOSI / CMU-MOSEI-shaped segments with a planted, tunable cross-modal dependency.

The generative model is documented in :func:`mdmest.fusion.data.make_synthetic` and in
``docs/fusion-data.md``; this module returns plain dicts that ``data`` turns into segments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SyntheticShape:
    """Split sizes and feature dims of a benchmark (FACTS Sec. 4)."""

    sizes: tuple[int, int, int]
    d_audio: int
    d_video: int


SHAPES = {
    "mosi": SyntheticShape(sizes=(1284, 229, 686), d_audio=74, d_video=47),
    "mosei": SyntheticShape(sizes=(16326, 1871, 4659), d_audio=74, d_video=35),
}

# The empirical distribution of all 2199 CMU-MOSI sentiment labels (pliang279/MFN, data/y_*.h5):
# (label, count). Labels are means of annotator scores, hence the thirds, quarters and fifths.
MOSI_LABEL_HISTOGRAM: tuple[tuple[float, int], ...] = (
    (-3.0, 12), (-2.8, 32), (-2.6, 36), (-2.5, 2), (-2.4, 40), (-2.25, 2), (-2.2, 61), (-2.0, 103),
    (-1.8, 72), (-1.75, 4), (-1.6, 91), (-1.5, 10), (-1.4, 79), (-4 / 3, 2), (-1.25, 8),
    (-1.2, 71), (-1.0, 110), (-0.8, 68), (-0.75, 8), (-2 / 3, 3), (-0.6, 55), (-0.5, 18),
    (-0.4, 69), (-1 / 3, 2), (-0.25, 10), (-0.2, 55), (0.0, 96), (0.2, 61), (0.25, 12), (1 / 3, 1),
    (0.4, 62), (0.5, 17), (0.6, 63), (2 / 3, 2), (0.75, 4), (0.8, 77), (1.0, 62), (1.2, 68),
    (1.25, 7), (4 / 3, 4), (1.4, 92), (1.5, 3), (1.6, 90), (1.75, 4), (1.8, 94), (2.0, 120),
    (2.2, 94), (2.25, 2), (2.4, 54), (2.5, 2), (2.6, 44), (2.8, 29), (3.0, 12),
)  # fmt: skip

_POSITIVE_WORDS = ("good", "great", "love", "funny", "amazing", "best", "enjoyed", "excellent")
_NEGATIVE_WORDS = ("bad", "boring", "hate", "awful", "worst", "terrible", "stupid", "disappointing")
_FILLER_VOCABULARY = 500


def _draw_labels(
    rng: np.random.Generator, n: int, split: str, label_source: str | os.PathLike[str] | None
) -> np.ndarray:
    if label_source is None:
        values, counts = map(np.asarray, zip(*MOSI_LABEL_HISTOGRAM))
        return rng.choice(values, size=n, p=counts / counts.sum())
    import h5py

    path = Path(label_source) / f"y_{split}.h5"
    if not path.is_file():
        raise FileNotFoundError(f"label_source: {path} does not exist (expected y_{{split}}.h5)")
    with h5py.File(path, "r") as handle:
        labels = np.asarray(handle["data"], dtype=np.float64).reshape(-1)
    return rng.choice(labels, size=n, replace=n > labels.size)


def _draw_words(
    rng: np.random.Generator, length: int, label: float, dependency: float
) -> list[str]:
    """Filler tokens, and sentiment words of the label's sign at a rate growing with dependency."""
    polar = _POSITIVE_WORDS if label > 0 else _NEGATIVE_WORDS
    sentiment = (rng.random(length) < 0.3 * dependency * min(abs(label), 1.0)) & (label != 0)
    return [
        str(rng.choice(polar)) if is_sentiment else f"w{rng.integers(_FILLER_VOCABULARY):03d}"
        for is_sentiment in sentiment
    ]


def generate(
    kind: str,
    sizes: tuple[int | None, int | None, int | None],
    *,
    dependency: float,
    seed: int,
    text_dim: int | None,
    latent_dim: int,
    noise: float,
    length_range: tuple[int, int],
    aligned: bool,
    label_source: str | os.PathLike[str] | None,
) -> dict[str, list[dict[str, Any]]]:
    """Draw the segments of each split as dicts with the fields of ``data.Segment``."""
    shape = SHAPES[kind]
    dims = {"text": text_dim, "audio": shape.d_audio, "video": shape.d_video}
    # Loadings and sentiment directions depend on the seed only, so every split shares them.
    rng = np.random.default_rng(seed)
    loadings = {
        m: rng.normal(scale=latent_dim**-0.5, size=(d, latent_dim)).astype(np.float32)
        for m, d in dims.items()
        if d is not None
    }
    directions = {m: rng.normal(size=latent_dim) for m in loadings}
    directions = {m: v / np.linalg.norm(v) for m, v in directions.items()}
    label_scale = 1.5  # about the standard deviation of MOSI labels, so s has unit scale
    low, high = length_range
    splits: dict[str, list[dict[str, Any]]] = {}
    for split_index, (split, n) in enumerate(zip(SPLITS, sizes)):
        n = shape.sizes[split_index] if n is None else n
        # One stream per split: resizing one split leaves the others unchanged.
        rng = np.random.default_rng([seed, split_index])
        labels = _draw_labels(rng, n, split, label_source)
        shared = rng.normal(size=(n, latent_dim))
        segments = []
        for i, label in enumerate(labels):
            word_count = int(rng.integers(low, high + 1))
            lengths = {"text": word_count, "audio": word_count, "video": word_count}
            if not aligned:
                lengths["audio"] = int(rng.integers(word_count, 3 * word_count + 1))
                lengths["video"] = int(rng.integers(word_count, 3 * word_count + 1))
            segment: dict[str, Any] = {
                "id": f"{kind}-{split}-{i:05d}",
                "label": float(label),
                "words": _draw_words(rng, word_count, float(label), dependency),
                "text": None,
            }
            for modality, loading in loadings.items():
                common = shared[i] + (label / label_scale) * directions[modality]
                private = rng.normal(size=latent_dim)
                latent = dependency * common + np.sqrt(1.0 - dependency**2) * private
                steps = rng.normal(scale=noise, size=(lengths[modality], loading.shape[0]))
                segment[modality] = (latent @ loading.T + steps).astype(np.float32)
            segments.append(segment)
        splits[split] = segments
    return splits
