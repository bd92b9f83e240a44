"""One video segment (:class:`Segment`) and the checked segments of one split (:class:`SplitData`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from mdmest._validation import check_choice
from mdmest.fusion.data import text
from mdmest.fusion.data.validation import DatasetFormatError, as_label, as_matrix, as_words, where

__all__ = ["Segment", "SplitData"]


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
                        f"{where(name, key, index)}: segment 0 {have} {key} features, "
                        "this one differs"
                    )
                if got is not None and got.shape[1] != expected.shape[1]:
                    raise DatasetFormatError(
                        f"{where(name, key, index)}: expected {expected.shape[1]} features "
                        f"(as segment 0), got {got.shape[1]}"
                    )
        self._with_text: dict[str, SplitData] = {}

    def _checked(self, segment: Segment, index: int) -> Segment:
        return replace(
            segment,
            id=str(segment.id),
            label=as_label(segment.label, self.name, "label", index),
            audio=as_matrix(segment.audio, self.name, "audio", index),
            video=as_matrix(segment.video, self.name, "video", index),
            text=None
            if segment.text is None
            else as_matrix(segment.text, self.name, "text", index),
            words=None
            if segment.words is None
            else as_words(segment.words, self.name, "words", index),
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
        features = self.segments[0].text
        return None if features is None else features.shape[1]

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
        check_choice("embedder", embedder, text.EMBEDDERS)
        if embedder not in self._with_text:
            for index, segment in enumerate(self.segments):
                if not segment.words:
                    raise ValueError(
                        f"{where(self.name, 'words', index)}: no words to embed "
                        f"(got {segment.words!r})"
                    )
            features = text.embed_words(
                [segment.words for segment in self.segments], batch_size=batch_size, device=device
            )
            self._with_text[embedder] = SplitData(
                [replace(s, text=f) for s, f in zip(self.segments, features)], name=self.name
            )
        return self._with_text[embedder]
