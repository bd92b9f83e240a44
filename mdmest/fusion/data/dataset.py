"""A dataset as named splits (:class:`MultimodalDataset`) and its random division (:func:`split_dataset`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch

from mdmest._validation import check_choice
from mdmest.fusion.data.segments import SplitData
from mdmest.fusion.data.validation import DatasetFormatError

__all__ = ["PRESETS", "SPLITS", "MultimodalDataset", "infer_preset", "split_dataset"]

SPLITS = ("train", "valid", "test")
"""The splits a full dataset has, in order."""

PRESETS = ("mosi", "mosei")
"""Values of :attr:`MultimodalDataset.preset` other than None."""

# (d_audio, d_video) that only one corpus has: COVAREP 74 with FACET 47 (MOSI) or 35
# (MOSEI) in the MAG-BERT, MISA and MMSA MOSEI files; MMSA's own MOSI extractors give 5 and 20.
_PRESET_OF_DIMS = {(74, 47): "mosi", (5, 20): "mosi", (74, 35): "mosei"}


def infer_preset(d_audio: int, d_video: int) -> str | None:
    """The corpus whose features have these widths, or None when no corpus is known to.

    Examples
    --------
    >>> infer_preset(74, 47), infer_preset(74, 35), infer_preset(5, 20), infer_preset(33, 709)
    ('mosi', 'mosei', 'mosi', None)
    """
    return _PRESET_OF_DIMS.get((d_audio, d_video))


class MultimodalDataset(Mapping[str, SplitData]):
    """Splits of a dataset by name (usually ``"train"``, ``"valid"``, ``"test"``).

    Parameters
    ----------
    splits : mapping of str to SplitData
        Feature dims must agree across splits.
    format : str
        The format it was read from (one of :data:`~mdmest.fusion.data.FORMATS`), for display.
    source : str
        The path or ``"synthetic:..."`` spec it was read from, for display.
    preset : {"mosi", "mosei"}, optional
        The corpus the data comes from, which picks a model's hyperparameter preset.

    Attributes
    ----------
    format, source : str
        As given.
    preset : str or None
        ``"mosi"``, ``"mosei"`` or None when unknown. :func:`~mdmest.fusion.data.make_synthetic`
        sets its ``kind``; :func:`~mdmest.fusion.data.load_dataset` sets it from the feature widths
        when only one corpus has them (audio 74 with video 47: MOSI's COVAREP and FACET, as in the
        MAG-BERT and MISA files; audio 5 with video 20: MMSA's MOSI; audio 74 with video 35: MOSEI),
        and None otherwise. :meth:`split` and :meth:`with_text_features` keep it.
    """

    def __init__(
        self,
        splits: Mapping[str, SplitData],
        *,
        format: str = "",
        source: str = "",
        preset: str | None = None,
    ) -> None:
        if not splits:
            raise DatasetFormatError("a dataset needs at least one split")
        if preset is not None:
            check_choice("preset", preset, PRESETS)
        self._splits = dict(splits)
        self.format = format
        self.source = source
        self.preset = preset
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
            f"format={self.format!r}, source={self.source!r}, preset={self.preset!r})"
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

    def _with_splits(self, splits: Mapping[str, SplitData]) -> MultimodalDataset:
        """Other splits with this dataset's format, source and preset."""
        return MultimodalDataset(splits, format=self.format, source=self.source, preset=self.preset)

    def with_text_features(
        self, embedder: str = "minilm", *, batch_size: int = 32, device: str | torch.device = "cpu"
    ) -> MultimodalDataset:
        """Every split with word-level text features; see :meth:`SplitData.with_text_features`."""
        return self._with_splits(
            {
                name: split.with_text_features(embedder, batch_size=batch_size, device=device)
                for name, split in self._splits.items()
            }
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
        return self._with_splits(split_dataset(self[source], fractions, seed))


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
    >>> from mdmest.fusion.data import make_synthetic
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
            for i, name in enumerate(SPLITS)
        },
        source=f"{split.name} split, seed {seed}",
    )
