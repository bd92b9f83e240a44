"""Synthetic CMU-MOSI / CMU-MOSEI-shaped data with a planted, tunable cross-modal dependency.

:func:`make_synthetic` draws it in memory (the generative model is in its docstring and in
``docs/fusion-data.md``), :func:`write_synthetic` writes it to a file in one of the field's formats.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdmest._validation import check_choice, check_int
from mdmest.fusion.data.dataset import SPLITS, MultimodalDataset
from mdmest.fusion.data.formats import WRITABLE, write_dataset
from mdmest.fusion.data.segments import Segment, SplitData

__all__ = [
    "MOSI_LABEL_HISTOGRAM",
    "SHAPES",
    "SYNTHETIC_PREFIX",
    "SyntheticShape",
    "generate",
    "make_planted",
    "make_synthetic",
    "write_synthetic",
]

SYNTHETIC_PREFIX = "synthetic:"
"""How a dataset path names synthetic data: ``"synthetic:mosi"``, ``"synthetic:mosei"``."""


@dataclass(frozen=True)
class SyntheticShape:
    """Split sizes and feature dims of a benchmark."""

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
    """Draw the segments of each split as dicts with the fields of :class:`Segment`."""
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


def make_synthetic(
    kind: str = "mosi",
    n_train: int | None = None,
    n_valid: int | None = None,
    n_test: int | None = None,
    *,
    dependency: float = 1.0,
    seed: int = 0,
    text_dim: int | None = 300,
    latent_dim: int = 8,
    noise: float = 1.0,
    length_range: tuple[int, int] = (4, 40),
    aligned: bool = True,
    label_source: str | os.PathLike[str] | None = None,
) -> MultimodalDataset:
    r"""Synthetic data in the shapes of CMU-MOSI or CMU-MOSEI with a planted cross-modal dependency.

    For each segment with label :math:`y` (drawn from the real MOSI label distribution), a sentiment
    factor :math:`s = y / 1.5`, a shared latent :math:`c \sim N(0, I_k)` and, per modality
    :math:`m`, a private latent :math:`e_m \sim N(0, I_k)` give the modality latent

    .. math::

        h_m = \delta \, (c + s \, u_m) + \sqrt{1 - \delta^2} \, e_m,

    with :math:`\delta` = ``dependency`` and :math:`u_m` a fixed unit vector. Each time step of
    modality :math:`m` is :math:`x_{m,t} = W_m h_m + \sigma \varepsilon_t`, with a fixed loading
    :math:`W_m \in R^{d_m \times k}` (entries :math:`N(0, 1/k)`) and
    :math:`\varepsilon_t \sim N(0, I)`.
    With :math:`\delta = 0` the modalities are independent and carry no sentiment; as
    :math:`\delta \to 1` they share the latent and each carries the full sentiment signal. Words are
    filler tokens (``w042``) with sentiment words of the label's sign at rate
    :math:`0.3 \, \delta \min(|y|, 1)`.

    Parameters
    ----------
    kind : {"mosi", "mosei"}
        MOSI: 1284/229/686 segments, audio 74, video 47. MOSEI: 16326/1871/4659, audio 74, video 35.
    n_train, n_valid, n_test : int, optional
        Override the split sizes.
    dependency : float
        :math:`\delta \in [0, 1]`.
    seed : int
        Loadings and directions depend on the seed only; each split has its own stream, so resizing
        one split leaves the others unchanged.
    text_dim : int or None
        Text feature width (300 GloVe-like, 768 BERT-like), or None for words only.
    latent_dim : int
        :math:`k`.
    noise : float
        :math:`\sigma`.
    length_range : (int, int)
        Words per segment, drawn uniformly in this closed range.
    aligned : bool
        If False, audio and video have their own lengths, between 1 and 3 times the word count.
    label_source : path-like, optional
        A folder with ``y_train.h5``, ``y_valid.h5``, ``y_test.h5`` (one dataset ``data`` each, as
        in pliang279/MFN): each split draws its labels from its file, without replacement when it
        is not larger. By default, from the embedded histogram of all 2199 MOSI labels (also for
        MOSEI).

    Returns
    -------
    MultimodalDataset
        Splits ``"train"``, ``"valid"``, ``"test"``; ``preset`` is ``kind``.

    Examples
    --------
    >>> data = make_synthetic("mosi", n_train=8, n_valid=4, n_test=4, dependency=0.5)
    >>> data.dims, len(data["train"])
    ((300, 74, 47), 8)
    """
    check_choice("kind", kind, tuple(SHAPES))
    if not isinstance(dependency, numbers.Real) or not 0.0 <= dependency <= 1.0:
        raise ValueError(f"dependency must be a number in [0, 1], got {dependency!r}")
    sizes = (n_train, n_valid, n_test)
    for name, n in zip(("n_train", "n_valid", "n_test"), sizes):
        if n is not None:
            check_int(name, n)
    if not 1 <= length_range[0] <= length_range[1]:
        raise ValueError(
            f"length_range must be (low, high) with 1 <= low <= high, got {length_range}"
        )
    for name, value in (("text_dim", text_dim), ("latent_dim", latent_dim)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    drawn = generate(
        kind,
        sizes,
        dependency=dependency,
        seed=seed,
        text_dim=text_dim,
        latent_dim=latent_dim,
        noise=noise,
        length_range=length_range,
        aligned=aligned,
        label_source=label_source,
    )
    return MultimodalDataset(
        {
            name: SplitData([Segment(**s) for s in segments], name)
            for name, segments in drawn.items()
        },
        format="synthetic",
        source=f"{SYNTHETIC_PREFIX}{kind}",
        preset=kind,
    )


def make_planted(
    noise: float = 1.0,
    n_train: int = 400,
    n_valid: int = 150,
    n_test: int = 300,
    *,
    seed: int = 0,
    dims: tuple[int, int, int] = (32, 16, 16),
    latent_dim: int = 4,
    length: int = 4,
    step_noise: float = 0.3,
) -> MultimodalDataset:
    r"""Small synthetic data whose only cross-modal dependency is the label, at a chosen noise level.

    For a label :math:`y` (real MOSI label distribution) and :math:`s = y / 1.5`, modality
    :math:`m` has the latent :math:`h_m = s\,u + \sigma\,e_m`, with :math:`u` one unit vector shared
    by all modalities and :math:`e_m \sim N(0, I_k)` its own noise (:math:`\sigma` = ``noise``); each
    of its ``length`` steps is :math:`W_m h_m + 0.3\,\varepsilon_t`. The modalities depend on each
    other only through the label, so a penalty that rewards their dependency pushes each encoder
    towards the label: the expected direction of its effect is known (it should help, more so when
    :math:`\sigma` is large and each modality alone is noisy). Words are filler tokens.

    Parameters
    ----------
    noise : float
        :math:`\sigma \ge 0`, the modality-specific noise.
    n_train, n_valid, n_test : int
        Split sizes.
    seed : int
        Loadings, direction and every draw.
    dims : (int, int, int)
        Feature widths of text, audio, video.
    latent_dim : int
        :math:`k`.
    length : int
        Steps per segment (word-aligned).
    step_noise : float
        Per-step noise scale.

    Examples
    --------
    >>> data = make_planted(2.0, 8, 4, 4)
    >>> data.dims, len(data["test"])
    ((32, 16, 16), 4)
    """
    if not isinstance(noise, numbers.Real) or not noise >= 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    named = {
        "n_train": n_train, "n_valid": n_valid, "n_test": n_test, "length": length,
        "latent_dim": latent_dim, **{f"dims[{i}]": d for i, d in enumerate(dims)},
    }  # fmt: skip
    for name, value in named.items():
        check_int(name, value)
    rng = np.random.default_rng([seed, 7])
    loadings = [rng.normal(scale=latent_dim**-0.5, size=(d, latent_dim)) for d in dims]
    direction = rng.normal(size=latent_dim)
    direction /= np.linalg.norm(direction)
    splits = {}
    for split_index, (split, n) in enumerate(zip(SPLITS, (n_train, n_valid, n_test))):
        rng = np.random.default_rng([seed, 7, split_index])
        labels = _draw_labels(rng, n, split, None)
        segments = []
        for i, label in enumerate(labels):
            views = []
            for loading in loadings:
                latent = (label / 1.5) * direction + noise * rng.normal(size=latent_dim)
                steps = rng.normal(scale=step_noise, size=(length, loading.shape[0]))
                views.append((latent @ loading.T + steps).astype(np.float32))
            words = [f"w{rng.integers(_FILLER_VOCABULARY):03d}" for _ in range(length)]
            segments.append(
                Segment(
                    f"planted-{split}-{i:05d}", float(label), views[1], views[2], views[0], words
                )
            )
        splits[split] = SplitData(segments, split)
    return MultimodalDataset(splits, format="synthetic", source=f"planted:{noise:g}", preset=None)


def write_synthetic(
    path: str | os.PathLike[str], format: str, kind: str = "mosi", **options: Any
) -> Path:
    """Write :func:`make_synthetic` data to a real file in ``format`` (see :func:`write_dataset`).

    ``"mmsa_unaligned"`` gets unaligned data (own audio and video lengths); the word-aligned formats
    keep words only, as the real files do. ``options`` go to :func:`make_synthetic`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> file = write_synthetic(folder / "mosi.pkl", "mag_bert", n_train=4, n_valid=2, n_test=2)
    >>> from mdmest.fusion.data import load_dataset
    >>> load_dataset(file).dims
    (None, 74, 47)
    """
    check_choice("format", format, WRITABLE)
    options.setdefault("aligned", format != "mmsa_unaligned")
    return write_dataset(make_synthetic(kind, **options), path, format)
