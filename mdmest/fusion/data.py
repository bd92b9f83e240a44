"""Multimodal sentiment datasets: loaders for the field's pickles, synthetic data, batching.

``load_dataset`` reads the MAG-BERT, MMSA (aligned and unaligned) and MISA/SDK formats with a
restricted unpickler, or generates synthetic data (``"synthetic:mosi"``); ``collate`` and
``make_loader`` build the batch dict of :class:`mdmest.fusion.base.FusionModel`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mdmest.fusion import _synthetic, _text
from mdmest.fusion._safe_pickle import UnsafePickleError, atomic_dump, safe_load

__all__ = [
    "FORMATS",
    "DatasetFormatError",
    "MultimodalDataset",
    "Segment",
    "SplitData",
    "UnsafePickleError",
    "collate",
    "load_dataset",
    "make_loader",
    "make_synthetic",
    "split_dataset",
    "write_dataset",
    "write_synthetic",
]

FORMATS = ("auto", "mag_bert", "mmsa_aligned", "mmsa_unaligned", "misa", "synthetic")
"""Values of ``format`` in :func:`load_dataset` (``write_dataset`` takes all but auto/synthetic)."""

_WRITABLE = ("mag_bert", "mmsa_aligned", "mmsa_unaligned", "misa")
_MISA_FILES = {"train": "train.pkl", "valid": "dev.pkl", "test": "test.pkl"}
_SYNTHETIC_PREFIX = "synthetic:"


class DatasetFormatError(ValueError):
    """A dataset file or segment does not have the expected structure, shape or values."""


def _where(split: str, key: str, index: int | None = None) -> str:
    location = f"split {split!r}, key {key!r}"
    return location if index is None else f"{location}, index {index}"


def _matrix(
    value: Any, split: str, key: str, index: int, *, neg_inf_to_zero: bool = False
) -> np.ndarray:
    """A finite float32 (rows, features) array with at least one row, or a DatasetFormatError."""
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[0] < 1 or not np.issubdtype(array.dtype, np.number):
        raise DatasetFormatError(
            f"{_where(split, key, index)}: expected a numeric (rows >= 1, features) array, "
            f"got {array.dtype} of shape {array.shape}"
        )
    array = array.astype(np.float32, copy=False)
    if neg_inf_to_zero and np.isneginf(array).any():
        array = np.where(np.isneginf(array), np.float32(0.0), array)
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        row, column = bad[0]
        raise DatasetFormatError(
            f"{_where(split, key, index)}: {bad.shape[0]} non-finite values, first "
            f"{array[row, column]} at row {row}, column {column}"
        )
    return array


def _label(value: Any, split: str, key: str, index: int) -> float:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.full(2, np.nan)
    if array.size != 1 or not np.isfinite(array).all():
        raise DatasetFormatError(
            f"{_where(split, key, index)}: expected one finite number, got {value!r}"
        )
    return float(array.reshape(-1)[0])


def _words(value: Any, split: str, key: str, index: int) -> list[str]:
    words = list(value) if isinstance(value, list | tuple | np.ndarray) else None
    if words is None or not all(isinstance(w, str) for w in words):
        raise DatasetFormatError(
            f"{_where(split, key, index)}: expected a list of str, got {value!r}"
        )
    return [str(w) for w in words]


@dataclass(frozen=True, eq=False)
class Segment:
    """One video segment.

    Attributes
    ----------
    id : str
        Segment id, e.g. ``'WKA5OygbEKI[0]'``.
    label : float
        Sentiment in [-3, 3].
    audio : numpy.ndarray
        float32 (L_a, d_audio).
    video : numpy.ndarray
        float32 (L_v, d_video).
    text : numpy.ndarray or None
        float32 (L_t, d_text) text features (GloVe, BERT, MiniLM), or None when the file has only
        words.
    words : list of str or None
        The transcript, one entry per word, when the file has it. In word-aligned files
        (MAG-BERT, MISA) word ``i`` matches row ``i`` of ``audio`` and ``video``; in MMSA files the
        words come from ``raw_text`` and the feature rows are BERT word pieces.
    """

    id: str
    label: float
    audio: np.ndarray
    video: np.ndarray
    text: np.ndarray | None = None
    words: list[str] | None = None


class SplitData(Dataset):
    """The segments of one split, a ``torch.utils.data.Dataset`` whose items are :class:`Segment`.

    Parameters
    ----------
    segments : sequence of Segment
        At least one; feature widths must agree across segments and either every segment or none has
        text features.
    name : str
        The split's name, used in error messages.

    Raises
    ------
    DatasetFormatError
        On an empty split, non-finite or non-2-D features, or disagreeing feature widths.
    """

    def __init__(self, segments: Sequence[Segment], name: str = "split") -> None:
        self.name = name
        self.segments = [self._checked(segment, index) for index, segment in enumerate(segments)]
        if not self.segments:
            raise DatasetFormatError(f"split {name!r} has no segments")
        first = self.segments[0]
        for index, segment in enumerate(self.segments):
            for key in ("text", "audio", "video"):
                expected, got = getattr(first, key), getattr(segment, key)
                if (expected is None) != (got is None):
                    have = "has" if expected is not None else "has no"
                    raise DatasetFormatError(
                        f"{_where(name, key, index)}: segment 0 {have} {key} features, "
                        "this one differs"
                    )
                if got is not None and got.shape[1] != expected.shape[1]:
                    raise DatasetFormatError(
                        f"{_where(name, key, index)}: expected {expected.shape[1]} features "
                        f"(as segment 0), got {got.shape[1]}"
                    )
        self._with_text: dict[str, SplitData] = {}

    def _checked(self, segment: Segment, index: int) -> Segment:
        return replace(
            segment,
            id=str(segment.id),
            label=_label(segment.label, self.name, "label", index),
            audio=_matrix(segment.audio, self.name, "audio", index),
            video=_matrix(segment.video, self.name, "video", index),
            text=None if segment.text is None else _matrix(segment.text, self.name, "text", index),
            words=None
            if segment.words is None
            else _words(segment.words, self.name, "words", index),
        )

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, index: int) -> Segment:
        return self.segments[index]

    def __repr__(self) -> str:
        return (
            f"SplitData(name={self.name!r}, segments={len(self)}, d_text={self.d_text}, "
            f"d_audio={self.d_audio}, d_video={self.d_video})"
        )

    @property
    def d_text(self) -> int | None:
        """Width of the text features, or None when the segments have only words."""
        text = self.segments[0].text
        return None if text is None else text.shape[1]

    @property
    def d_audio(self) -> int:
        """Width of the audio features."""
        return self.segments[0].audio.shape[1]

    @property
    def d_video(self) -> int:
        """Width of the video features."""
        return self.segments[0].video.shape[1]

    @property
    def dims(self) -> tuple[int | None, int, int]:
        """(d_text, d_audio, d_video): what a fusion model's input sizes must be."""
        return (self.d_text, self.d_audio, self.d_video)

    @property
    def labels(self) -> np.ndarray:
        """float32 (N,) sentiment labels."""
        return np.array([segment.label for segment in self.segments], dtype=np.float32)

    @property
    def ids(self) -> list[str]:
        """Segment ids in order."""
        return [segment.id for segment in self.segments]

    def subset(self, indices: Sequence[int], name: str | None = None) -> SplitData:
        """A new split of the segments at ``indices`` (in that order)."""
        return SplitData([self.segments[i] for i in indices], name=name or self.name)

    def with_text_features(
        self, embedder: str = "minilm", *, batch_size: int = 32, device: str | torch.device = "cpu"
    ) -> SplitData:
        """This split with ``text`` replaced by word-level features computed from ``words``.

        ``"minilm"`` runs the offline pretrained MiniLM over each transcript and averages the last
        hidden states of each word's word pieces, giving float32 (len(words), 384) per segment, row
        ``i`` for word ``i``. The result is cached on this object, so the model runs once per split.

        Parameters
        ----------
        embedder : {"minilm"}
            The text encoder.
        batch_size : int
            Segments per forward pass.
        device : str or torch.device
            Where the encoder runs.

        Raises
        ------
        ValueError
            On an unknown embedder, or when a segment has no words.
        """
        if embedder not in _text.EMBEDDERS:
            raise ValueError(f"embedder must be one of {_text.EMBEDDERS}, got {embedder!r}")
        if embedder not in self._with_text:
            for index, segment in enumerate(self.segments):
                if not segment.words:
                    raise ValueError(
                        f"{_where(self.name, 'words', index)}: no words to embed "
                        f"(got {segment.words!r})"
                    )
            features = _text.embed_words(
                [segment.words for segment in self.segments], batch_size=batch_size, device=device
            )
            self._with_text[embedder] = SplitData(
                [replace(s, text=f) for s, f in zip(self.segments, features)], name=self.name
            )
        return self._with_text[embedder]


class MultimodalDataset(Mapping[str, SplitData]):
    """Splits of a dataset by name (usually ``"train"``, ``"valid"``, ``"test"``).

    Parameters
    ----------
    splits : mapping of str to SplitData
        Feature dims must agree across splits.
    format : str
        The format it was read from (one of :data:`FORMATS`), for display.
    source : str
        The path or ``"synthetic:..."`` spec it was read from, for display.
    """

    def __init__(
        self, splits: Mapping[str, SplitData], *, format: str = "", source: str = ""
    ) -> None:
        if not splits:
            raise DatasetFormatError("a dataset needs at least one split")
        self._splits = dict(splits)
        self.format = format
        self.source = source
        reference_name, reference = next(iter(self._splits.items()))
        for name, split in self._splits.items():
            if split.dims != reference.dims:
                raise DatasetFormatError(
                    f"split {name!r} has (d_text, d_audio, d_video) = {split.dims}, "
                    f"split {reference_name!r} has {reference.dims}"
                )

    def __getitem__(self, name: str) -> SplitData:
        try:
            return self._splits[name]
        except KeyError:
            raise KeyError(f"no split {name!r}; this dataset has {list(self._splits)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._splits)

    def __len__(self) -> int:
        return len(self._splits)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(split)}" for name, split in self._splits.items())
        d_text, d_audio, d_video = self.dims
        return (
            f"MultimodalDataset({sizes}; d_text={d_text}, d_audio={d_audio}, d_video={d_video}; "
            f"format={self.format!r}, source={self.source!r})"
        )

    @property
    def dims(self) -> tuple[int | None, int, int]:
        """(d_text, d_audio, d_video), shared by all splits."""
        return next(iter(self._splits.values())).dims

    @property
    def d_text(self) -> int | None:
        return self.dims[0]

    @property
    def d_audio(self) -> int:
        return self.dims[1]

    @property
    def d_video(self) -> int:
        return self.dims[2]

    def with_text_features(
        self, embedder: str = "minilm", *, batch_size: int = 32, device: str | torch.device = "cpu"
    ) -> MultimodalDataset:
        """Every split with word-level text features; see :meth:`SplitData.with_text_features`."""
        return MultimodalDataset(
            {
                name: split.with_text_features(embedder, batch_size=batch_size, device=device)
                for name, split in self._splits.items()
            },
            format=self.format,
            source=self.source,
        )

    def split(
        self,
        fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        source: str | None = None,
    ) -> MultimodalDataset:
        """Split one split into train/valid/test; see :func:`split_dataset`.

        ``source`` names the split to divide; it may be left out when the dataset has exactly one
        (a single MISA file loads as the split ``"all"``).
        """
        if source is None:
            if len(self._splits) != 1:
                raise ValueError(f"source must name one of the splits {list(self._splits)}")
            source = next(iter(self._splits))
        divided = split_dataset(self[source], fractions, seed)
        return MultimodalDataset(divided, format=self.format, source=self.source)


def split_dataset(
    split: SplitData, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0
) -> MultimodalDataset:
    """Divide one split at random into ``"train"``, ``"valid"`` and ``"test"``.

    Sizes are ``round(fractions[0] * N)``, ``round(fractions[1] * N)`` and the rest; each must be at
    least one segment. The same ``seed`` gives the same division.

    Parameters
    ----------
    split : SplitData
        The segments to divide (e.g. the 229 real MOSI segments of the MISA file).
    fractions : (float, float, float)
        Positive fractions summing to 1.
    seed : int
        Seed of the permutation.

    Examples
    --------
    >>> data = make_synthetic(n_train=20, n_valid=2, n_test=2)
    >>> {name: len(s) for name, s in split_dataset(data["train"], (0.5, 0.25, 0.25)).items()}
    {'train': 10, 'valid': 5, 'test': 5}
    """
    if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    n = len(split)
    n_train, n_valid = round(fractions[0] * n), round(fractions[1] * n)
    sizes = (n_train, n_valid, n - n_train - n_valid)
    if min(sizes) < 1:
        raise ValueError(
            f"fractions {fractions} of {n} segments give sizes {sizes}; each needs >= 1"
        )
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum((0, *sizes))
    return MultimodalDataset(
        {
            name: split.subset(order[bounds[i] : bounds[i + 1]].tolist(), name=name)
            for i, name in enumerate(_synthetic.SPLITS)
        },
        source=f"{split.name} split, seed {seed}",
    )


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
        Splits ``"train"``, ``"valid"``, ``"test"``.

    Examples
    --------
    >>> data = make_synthetic("mosi", n_train=8, n_valid=4, n_test=4, dependency=0.5)
    >>> data.dims, len(data["train"])
    ((300, 74, 47), 8)
    """
    if kind not in _synthetic.SHAPES:
        raise ValueError(f"kind must be one of {tuple(_synthetic.SHAPES)}, got {kind!r}")
    if not 0.0 <= dependency <= 1.0:
        raise ValueError(f"dependency must lie in [0, 1], got {dependency}")
    sizes = (n_train, n_valid, n_test)
    if any(n is not None and n < 1 for n in sizes):
        raise ValueError(f"split sizes must be >= 1, got n_train, n_valid, n_test = {sizes}")
    if not 1 <= length_range[0] <= length_range[1]:
        raise ValueError(
            f"length_range must be (low, high) with 1 <= low <= high, got {length_range}"
        )
    for name, value in (("text_dim", text_dim), ("latent_dim", latent_dim)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    drawn = _synthetic.generate(
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
        source=f"{_SYNTHETIC_PREFIX}{kind}",
    )


# ---------------------------------------------------------------------------------------- reading


def _list_split(items: Any, split: str) -> SplitData:
    """A MAG-BERT split or MISA file: items ((words, visual, acoustic) | (ids, visual, acoustic,
    words), label, segment)."""
    if not isinstance(items, list):
        raise DatasetFormatError(f"split {split!r}: expected a list of segments, got {type(items)}")
    segments = []
    for index, item in enumerate(items):
        features = item[0] if isinstance(item, tuple | list) and len(item) == 3 else None
        if not isinstance(features, tuple | list) or len(features) not in (3, 4):
            raise DatasetFormatError(
                f"{_where(split, 'segment', index)}: expected ((words, visual, acoustic) or "
                "(word_ids, visual, acoustic, words), label, segment)"
            )
        words = features[0] if len(features) == 3 else features[3]
        words = _words(words, split, "words", index)
        visual = _matrix(features[1], split, "visual", index)
        acoustic = _matrix(features[2], split, "acoustic", index, neg_inf_to_zero=True)
        for key, array in (("visual", visual), ("acoustic", acoustic)):
            if array.shape[0] != len(words):
                raise DatasetFormatError(
                    f"{_where(split, key, index)}: expected one row per word ({len(words)}), "
                    f"got {array.shape[0]}"
                )
        segments.append(
            Segment(
                id=str(item[2]),
                label=_label(item[1], split, "label", index),
                audio=acoustic,
                video=visual,
                words=words,
            )
        )
    return SplitData(segments, split)


def _mmsa_array(
    data: Mapping[str, Any], split: str, key: str, ndim: int, n: int | None
) -> np.ndarray:
    if key not in data:
        raise DatasetFormatError(f"{_where(split, key)}: missing (keys present: {sorted(data)})")
    array = np.asarray(data[key])
    if array.ndim != ndim or (n is not None and array.shape[0] != n):
        expected = f"{ndim}-D" + ("" if n is None else f" with {n} segments")
        raise DatasetFormatError(
            f"{_where(split, key)}: expected {expected}, got shape {array.shape}"
        )
    return array


def _checked_lengths(lengths: np.ndarray, split: str, key: str, padded: int) -> np.ndarray:
    numeric = np.issubdtype(lengths.dtype, np.number)
    if not numeric or (lengths.size and (lengths.min() < 0 or lengths.max() > padded)):
        raise DatasetFormatError(
            f"{_where(split, key)}: expected lengths in [0, {padded}], "
            f"got {lengths.min()}..{lengths.max()}"
        )
    # A segment with no frames keeps one zero row of padding, so packed recurrent models still run.
    return np.maximum(lengths.astype(np.int64), 1)


def _mmsa_split(data: Any, split: str, unaligned: bool) -> SplitData:
    if not isinstance(data, Mapping):
        raise DatasetFormatError(f"split {split!r}: expected a dict of arrays, got {type(data)}")
    labels = _mmsa_array(data, split, "regression_labels", 1, None)
    n = labels.shape[0]
    text = _mmsa_array(data, split, "text", 3, n)
    audio = _mmsa_array(data, split, "audio", 3, n)
    vision = _mmsa_array(data, split, "vision", 3, n)
    ids = _mmsa_array(data, split, "id", 1, n)
    raw_text = _mmsa_array(data, split, "raw_text", 1, n) if "raw_text" in data else None
    if "text_bert" in data:
        mask = _mmsa_array(data, split, "text_bert", 3, n)[:, 1, :]
        text_lengths = _checked_lengths(mask.sum(axis=1), split, "text_bert", text.shape[1])
    else:
        text_lengths = np.full(n, text.shape[1])
    if unaligned:
        audio_lengths, vision_lengths = (
            _checked_lengths(_mmsa_array(data, split, key, 1, n), split, key, array.shape[1])
            for key, array in (("audio_lengths", audio), ("vision_lengths", vision))
        )
    else:
        for key, array in (("audio", audio), ("vision", vision)):
            if array.shape[1] != text.shape[1]:
                raise DatasetFormatError(
                    f"{_where(split, key)}: aligned data needs {text.shape[1]} steps like 'text', "
                    f"got shape {array.shape}"
                )
        audio_lengths = vision_lengths = text_lengths
    segments = [
        Segment(
            id=str(ids[i]),
            label=_label(labels[i], split, "regression_labels", i),
            text=_matrix(text[i, : text_lengths[i]], split, "text", i),
            audio=_matrix(audio[i, : audio_lengths[i]], split, "audio", i, neg_inf_to_zero=True),
            video=_matrix(vision[i, : vision_lengths[i]], split, "vision", i),
            words=None if raw_text is None else str(raw_text[i]).split(),
        )
        for i in range(n)
    ]
    return SplitData(segments, split)


def _detect(content: Any, path: Path) -> str:
    """The format of a loaded pickle, from its structure."""
    if isinstance(content, list):
        first = content[0] if content else None
        features = first[0] if isinstance(first, tuple | list) and first else None
        return "misa" if isinstance(features, tuple | list) and len(features) == 4 else "mag_bert"
    if isinstance(content, Mapping) and {"train", "dev", "test"} <= set(content):
        return "mag_bert"
    if isinstance(content, Mapping) and {"train", "valid", "test"} <= set(content):
        train = content["train"]
        return (
            "mmsa_unaligned"
            if isinstance(train, Mapping) and "audio_lengths" in train
            else "mmsa_aligned"
        )
    described = sorted(content) if isinstance(content, Mapping) else type(content).__name__
    raise DatasetFormatError(
        f"{path}: not a known dataset format (got {described}); expected a dict with splits "
        "train/dev/test (MAG-BERT) or train/valid/test (MMSA), or a list of segments (MISA)"
    )


def _read_file(path: Path) -> tuple[str, dict[str, SplitData]]:
    content = safe_load(path)
    detected = _detect(content, path)
    if isinstance(content, list):
        return detected, {"all": _list_split(content, "all")}
    if detected == "mag_bert":
        renamed = {"train": "train", "valid": "dev", "test": "test"}
        return detected, {name: _list_split(content[key], name) for name, key in renamed.items()}
    unaligned = detected == "mmsa_unaligned"
    return detected, {
        name: _mmsa_split(content[name], name, unaligned) for name in _synthetic.SPLITS
    }


def _read_directory(path: Path) -> tuple[str, dict[str, SplitData]]:
    splits, detected = {}, "misa"
    for name, filename in _MISA_FILES.items():
        candidates = [path / filename] + ([path / "valid.pkl"] if name == "valid" else [])
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{path}: a dataset folder needs train.pkl, dev.pkl (or valid.pkl) and test.pkl; "
                f"missing {filename}"
            )
        content = safe_load(found)
        if not isinstance(content, list):
            raise DatasetFormatError(f"{found}: expected a list of segments, got {type(content)}")
        detected = _detect(content, found)
        splits[name] = _list_split(content, name)
    return detected, splits


def load_dataset(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    text_features: str | None = None,
    **synthetic_options: Any,
) -> MultimodalDataset:
    """Load a multimodal sentiment dataset.

    Pickles are read with a restricted unpickler that resolves only numpy array reconstruction and
    builtin containers; any other global raises :class:`UnsafePickleError` before anything runs.

    Parameters
    ----------
    path : path-like or str
        - a MAG-BERT pickle (dict ``train``/``dev``/``test``; ``dev`` becomes ``"valid"``),
        - an MMSA pickle, aligned or unaligned (dict ``train``/``valid``/``test`` of arrays),
        - a MISA/SDK pickle (a list of segments): one split, named ``"all"``; divide it with
          :meth:`MultimodalDataset.split`,
        - a folder with ``train.pkl``, ``dev.pkl`` (or ``valid.pkl``) and ``test.pkl`` in MISA
          format,
        - ``"synthetic:mosi"`` or ``"synthetic:mosei"``: :func:`make_synthetic` in memory.
    format : str
        One of :data:`FORMATS`; ``"auto"`` detects it from the content. A named format that does not
        match the content raises.
    text_features : {"minilm"}, optional
        Compute word-level text features from the words (see
        :meth:`MultimodalDataset.with_text_features`), e.g. for the MAG-BERT and MISA files, which
        have words only.
    **synthetic_options
        Keyword arguments of :func:`make_synthetic`, only for ``"synthetic:..."`` paths.

    Returns
    -------
    MultimodalDataset

    Raises
    ------
    UnsafePickleError
        The pickle references a global other than numpy reconstruction or builtin containers.
    pickle.UnpicklingError
        The pickle is truncated or corrupt (the message names the file).
    DatasetFormatError
        Unknown structure, missing keys, wrong shapes or non-finite values (the message names the
        split, key and segment index).

    Examples
    --------
    >>> data = load_dataset("synthetic:mosi", n_train=4, n_valid=2, n_test=2)
    >>> sorted(data), data["train"].d_audio
    (['test', 'train', 'valid'], 74)
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    text = str(path)
    if text.startswith(_SYNTHETIC_PREFIX):
        if format not in ("auto", "synthetic"):
            raise ValueError(f"{text!r} is synthetic data, format {format!r} does not apply")
        dataset = make_synthetic(text[len(_SYNTHETIC_PREFIX) :], **synthetic_options)
    else:
        if synthetic_options:
            raise TypeError(
                f"unexpected keyword arguments {sorted(synthetic_options)}: they apply to "
                "'synthetic:...' paths only"
            )
        if format == "synthetic":
            raise ValueError(
                f"format 'synthetic' needs a path 'synthetic:mosi|mosei', got {text!r}"
            )
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no dataset at {path}")
        detected, splits = _read_directory(path) if path.is_dir() else _read_file(path)
        if format not in ("auto", detected):
            raise DatasetFormatError(
                f"{path}: format {format!r} requested, the content is {detected!r}"
            )
        dataset = MultimodalDataset(splits, format=detected, source=str(path))
    return dataset if text_features is None else dataset.with_text_features(text_features)


# ---------------------------------------------------------------------------------------- writing


def _segments_with(dataset: MultimodalDataset, format: str, key: str) -> None:
    for name, split in dataset.items():
        for index, segment in enumerate(split):
            if getattr(segment, key) is None:
                raise ValueError(f"{_where(name, key, index)}: format {format!r} needs {key}")


def _as_list_split(split: SplitData, with_word_ids: bool, vocabulary: dict[str, int]) -> list:
    items = []
    for index, s in enumerate(split):
        if not s.audio.shape[0] == s.video.shape[0] == len(s.words):
            raise ValueError(
                f"{_where(split.name, 'words', index)}: word-aligned formats need one audio and "
                f"video row per word, got {len(s.words)} words, audio {s.audio.shape}, "
                f"video {s.video.shape}"
            )
        label = np.array([[s.label]], dtype=np.float32)
        if with_word_ids:
            word_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in s.words])
            items.append(((word_ids, s.video, s.audio, list(s.words)), label, s.id))
        else:
            items.append(((list(s.words), s.video, s.audio), label, s.id))
    return items


def _padded(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    out = np.zeros((len(arrays), lengths.max(), arrays[0].shape[1]), dtype=np.float32)
    for i, array in enumerate(arrays):
        out[i, : array.shape[0]] = array
    return out, lengths


def _as_mmsa_split(split: SplitData, unaligned: bool) -> dict[str, np.ndarray]:
    text, text_lengths = _padded([s.text for s in split])
    audio, audio_lengths = _padded([s.audio for s in split])
    vision, vision_lengths = _padded([s.video for s in split])
    if not unaligned and not (
        np.array_equal(text_lengths, audio_lengths) and np.array_equal(text_lengths, vision_lengths)
    ):
        raise ValueError(
            f"split {split.name!r}: format 'mmsa_aligned' needs equal text, audio and video "
            "lengths per segment; write unaligned data as 'mmsa_unaligned'"
        )
    mask = (np.arange(text.shape[1]) < text_lengths[:, None]).astype(np.int64)
    # Word-piece ids are unknown for features that did not come from BERT: ids 0, real mask.
    text_bert = np.stack([np.zeros_like(mask), mask, np.zeros_like(mask)], axis=1)
    data = {
        "raw_text": np.array([" ".join(s.words or ()) for s in split]),
        "id": np.array(split.ids),
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        "regression_labels": split.labels,
    }
    if unaligned:
        data["audio_lengths"] = audio_lengths
        data["vision_lengths"] = vision_lengths
    return data


def write_dataset(dataset: MultimodalDataset, path: str | os.PathLike[str], format: str) -> Path:
    """Write a dataset with splits train/valid/test in one of the field's formats.

    Each file is written atomically (a temporary file in the same folder, then ``os.replace``), so a
    failure leaves no partial file.

    Parameters
    ----------
    dataset : MultimodalDataset
        Needs splits ``"train"``, ``"valid"``, ``"test"``. MAG-BERT and MISA need words, one per
        audio and video row; MMSA needs text features.
    path : path-like
        The pickle to write; for ``"misa"`` a folder that receives ``train.pkl``, ``dev.pkl``,
        ``test.pkl``.
    format : {"mag_bert", "mmsa_aligned", "mmsa_unaligned", "misa"}
        MMSA files get zero word-piece ids in ``text_bert`` (with the true mask).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if format not in _WRITABLE:
        raise ValueError(f"format must be one of {_WRITABLE}, got {format!r}")
    missing = [name for name in _synthetic.SPLITS if name not in dataset]
    if missing:
        raise ValueError(f"writing needs splits train, valid, test; missing {missing}")
    _segments_with(dataset, format, "text" if format.startswith("mmsa") else "words")
    path = Path(path)
    if format == "misa":
        vocabulary: dict[str, int] = {}
        content = {n: _as_list_split(dataset[n], True, vocabulary) for n in _MISA_FILES}
        path.mkdir(parents=True, exist_ok=True)
        for name, filename in _MISA_FILES.items():
            atomic_dump(content[name], path / filename)
    elif format == "mag_bert":
        renamed = {"train": "train", "dev": "valid", "test": "test"}
        atomic_dump(
            {key: _as_list_split(dataset[n], False, {}) for key, n in renamed.items()}, path
        )
    else:
        unaligned = format == "mmsa_unaligned"
        atomic_dump({n: _as_mmsa_split(dataset[n], unaligned) for n in _synthetic.SPLITS}, path)
    return path


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
    >>> load_dataset(file).dims
    (None, 74, 47)
    """
    if format not in _WRITABLE:
        raise ValueError(f"format must be one of {_WRITABLE}, got {format!r}")
    options.setdefault("aligned", format != "mmsa_unaligned")
    return write_dataset(make_synthetic(kind, **options), path, format)


# ---------------------------------------------------------------------------------------- batching


def _pad(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    padded, lengths = _padded(arrays)
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def collate(segments: Sequence[Segment]) -> dict[str, Any]:
    """Batch segments into the dict that :class:`mdmest.fusion.base.FusionModel` reads.

    Sequences are padded at the end with zeros to the longest in the batch.

    Parameters
    ----------
    segments : sequence of Segment
        All with text features, or none.

    Returns
    -------
    dict
        ``"text"`` float32 (B, L, d_text) (only when the segments have text features), ``"audio"``
        (B, L_a, d_audio), ``"video"`` (B, L_v, d_video); ``"text_lengths"`` (when ``"text"`` is
        present, else the word counts when every segment has words), ``"audio_lengths"``,
        ``"video_lengths"`` int64 (B,); ``"label"`` float32 (B,); ``"words"`` list of B word lists
        (None where missing); ``"id"`` list of B str.
    """
    if not segments:
        raise ValueError("collate needs at least one segment")
    has_text = [s.text is not None for s in segments]
    if any(has_text) and not all(has_text):
        raise ValueError("collate: some segments have text features and some do not")
    batch: dict[str, Any] = {}
    if all(has_text):
        batch["text"], batch["text_lengths"] = _pad([s.text for s in segments])
    elif all(s.words is not None for s in segments):
        batch["text_lengths"] = torch.tensor([len(s.words) for s in segments], dtype=torch.int64)
    batch["audio"], batch["audio_lengths"] = _pad([s.audio for s in segments])
    batch["video"], batch["video_lengths"] = _pad([s.video for s in segments])
    batch["label"] = torch.tensor([s.label for s in segments], dtype=torch.float32)
    batch["words"] = [s.words for s in segments]
    batch["id"] = [s.id for s in segments]
    return batch


def make_loader(
    split: SplitData,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    *,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` over a split that yields :func:`collate` batches.

    With ``shuffle=True`` the order comes from a ``torch.Generator`` seeded with ``seed``, so it is
    reproducible and independent of the global torch seed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        split,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate,
        drop_last=drop_last,
        num_workers=num_workers,
    )
