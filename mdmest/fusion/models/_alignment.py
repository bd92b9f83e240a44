"""Copy word-level audio and video features onto the word pieces of a transformer tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from mdmest._validation import check_choice

MODEL_TYPES = ("bert", "xlnet")

# XLNet marks its trailing <cls> with segment 2 and (left) padding with segment 3.
_XLNET_CLS_SEGMENT = 2
_XLNET_PAD_SEGMENT = 3


class AlignedBatch(NamedTuple):
    """Word-piece inputs with the audio and video rows copied onto every piece of their word.

    All tensors share the (B, T) layout of ``input_ids``, T ≤ ``max_length``.

    Attributes
    ----------
    input_ids, attention_mask, token_type_ids : torch.Tensor
        int64 (B, T), ready for ``BertModel`` / ``XLNetModel``.
    audio : torch.Tensor
        (B, T, d_audio): the acoustic row of the word each piece comes from; zeros on special tokens
        and padding.
    video : torch.Tensor
        (B, T, d_video), likewise.
    word_mask : torch.Tensor
        bool (B, T): True on the pieces that come from a word (not special tokens, not padding).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    audio: torch.Tensor
    video: torch.Tensor
    word_mask: torch.Tensor


def word_piece_ids(words: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Tokenize each word on its own, without special tokens.

    Parameters
    ----------
    words : sequence of str
        The words, in any order; each is tokenized separately.
    tokenizer : transformers tokenizer
        Any tokenizer that maps a list of strings to ``{"input_ids": list of id lists}``.

    Returns
    -------
    list of list of int
        The piece ids of each word (a word that tokenizes to nothing gets an empty list).
    """
    if not words:
        return []
    return [list(ids) for ids in tokenizer(list(words), add_special_tokens=False)["input_ids"]]


def align_to_wordpieces(
    words_batch: Sequence[Sequence[str]],
    audio: torch.Tensor,
    video: torch.Tensor,
    tokenizer: Any,
    max_length: int = 50,
    model_type: str = "bert",
) -> AlignedBatch:
    """Tokenize word lists and repeat each word's audio and video rows for each of its pieces.

    Row ``i`` of ``audio[b]`` and ``video[b]`` belongs to ``words_batch[b][i]``. Each word is
    tokenized on its own; if it yields ``n`` pieces, its rows appear ``n`` times. Sequences are
    truncated to ``max_length`` tokens including the special tokens, and padded to the longest one
    in the batch:

    - ``"bert"``: ``[CLS] pieces [SEP] [PAD]...`` (padding on the right), token type 0 everywhere;
    - ``"xlnet"``: ``[PAD]... pieces <sep> <cls>`` (padding on the left, XLNet's convention), token
      type 0 on pieces and ``<sep>``, 2 on ``<cls>``, 3 on padding.

    Special tokens and padding get zero audio and video rows.

    Parameters
    ----------
    words_batch : sequence of B sequences of str
        The transcript of each segment, one entry per word.
    audio : torch.Tensor
        (B, L, d_audio) word-aligned acoustic features, L ≥ the longest word list.
    video : torch.Tensor
        (B, L, d_video) word-aligned visual features.
    tokenizer : transformers tokenizer
        Provides ``cls_token_id``, ``sep_token_id``, ``pad_token_id`` and word-piece ids.
    max_length : int, default 50
        Maximum number of tokens per segment, special tokens included (at least 3).
    model_type : {"bert", "xlnet"}, default "bert"
        Which layout of special tokens and padding to build.

    Returns
    -------
    AlignedBatch

    Examples
    --------
    >>> pieces = {"so": [7], "unbelievable": [8, 9]}
    >>> class Tok:
    ...     cls_token_id, sep_token_id, pad_token_id = 1, 2, 0
    ...     def __call__(self, words, add_special_tokens):
    ...         return {"input_ids": [pieces[w] for w in words]}
    >>> out = align_to_wordpieces([["so", "unbelievable"]], torch.arange(2.0).view(1, 2, 1),
    ...                           torch.zeros(1, 2, 1), Tok())
    >>> out.input_ids.tolist(), out.audio.squeeze(-1).tolist()
    ([[1, 7, 8, 9, 2]], [[0.0, 0.0, 1.0, 1.0, 0.0]])
    """
    check_choice("model_type", model_type, MODEL_TYPES)
    if max_length < 3:
        raise ValueError(
            f"max_length must be at least 3 (two special tokens and a piece), got {max_length}"
        )
    batch_size = len(words_batch)
    for name, features in (("audio", audio), ("video", video)):
        if features.dim() != 3 or features.shape[0] != batch_size:
            raise ValueError(
                f"{name} must have shape (B, L, d) with B = {batch_size} word lists, "
                f"got {tuple(features.shape)}"
            )
        longest = max((len(words) for words in words_batch), default=0)
        if features.shape[1] < longest:
            raise ValueError(
                f"{name} has {features.shape[1]} rows per segment but a segment has {longest} "
                "words; the features must be word-aligned (one row per word)"
            )

    vocabulary = sorted({word for words in words_batch for word in words})
    pieces_of = dict(zip(vocabulary, word_piece_ids(vocabulary, tokenizer)))

    # For every segment: the piece ids and, for each piece, the row index of its word.
    sequences: list[tuple[list[int], list[int]]] = []
    for words in words_batch:
        ids: list[int] = []
        rows: list[int] = []
        for row, word in enumerate(words):
            pieces = pieces_of[word]
            ids.extend(pieces)
            rows.extend([row] * len(pieces))
        sequences.append((ids[: max_length - 2], rows[: max_length - 2]))

    width = max(len(ids) for ids, _ in sequences) + 2 if sequences else 2
    input_ids = torch.full((batch_size, width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(batch_size, width, dtype=torch.long)
    token_type_ids = torch.zeros(batch_size, width, dtype=torch.long)
    word_mask = torch.zeros(batch_size, width, dtype=torch.bool)
    aligned_audio = audio.new_zeros(batch_size, width, audio.shape[-1])
    aligned_video = video.new_zeros(batch_size, width, video.shape[-1])

    for b, (ids, rows) in enumerate(sequences):
        n = len(ids)
        if model_type == "bert":
            start = 1
            tokens = [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]
            input_ids[b, : n + 2] = torch.tensor(tokens)
            attention_mask[b, : n + 2] = 1
        else:
            start = width - n - 2
            tokens = [*ids, tokenizer.sep_token_id, tokenizer.cls_token_id]
            input_ids[b, start:] = torch.tensor(tokens)
            attention_mask[b, start:] = 1
            token_type_ids[b, :start] = _XLNET_PAD_SEGMENT
            token_type_ids[b, -1] = _XLNET_CLS_SEGMENT
        if n:
            index = torch.tensor(rows, device=audio.device)
            aligned_audio[b, start : start + n] = audio[b, index]
            aligned_video[b, start : start + n] = video[b, index]
            word_mask[b, start : start + n] = True

    device = audio.device
    return AlignedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        token_type_ids=token_type_ids.to(device),
        audio=aligned_audio,
        video=aligned_video,
        word_mask=word_mask.to(device),
    )
