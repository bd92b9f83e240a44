"""Tests of mdmest.fusion.data.synthetic: shapes, reproducibility, labels, the planted dependency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mdmest.fusion.data import load_dataset, make_synthetic
from mdmest.fusion.data.synthetic import MOSI_LABEL_HISTOGRAM, SHAPES, make_planted

SIZES = {"n_train": 5, "n_valid": 3, "n_test": 4}


def test_synthetic_shapes_and_defaults() -> None:
    assert SHAPES["mosi"].sizes == (1284, 229, 686)
    assert SHAPES["mosei"].sizes == (16326, 1871, 4659)
    data = load_dataset("synthetic:mosi")
    assert [len(split) for split in data.values()] == [1284, 229, 686]
    assert data.dims == (300, 74, 47)
    mosei = load_dataset("synthetic:mosei", text_dim=768, **SIZES)
    assert mosei.dims == (768, 74, 35) and len(mosei["test"]) == 4
    words_only = make_synthetic(text_dim=None, **SIZES)
    assert words_only.dims == (None, 74, 47) and words_only["train"][0].words


def test_synthetic_is_reproducible_and_splits_independent() -> None:
    first = make_synthetic(seed=2, **SIZES)
    again = make_synthetic(seed=2, **SIZES)
    resized = make_synthetic(seed=2, n_train=9, n_valid=3, n_test=4)
    other = make_synthetic(seed=3, **SIZES)
    np.testing.assert_array_equal(first["train"][0].audio, again["train"][0].audio)
    np.testing.assert_array_equal(first["test"][2].video, resized["test"][2].video)
    assert not np.array_equal(first["test"][2].video, other["test"][2].video)


def test_synthetic_labels_follow_real_distribution(mosi_folder: Path) -> None:
    import h5py

    with h5py.File(mosi_folder / "y_test.h5", "r") as handle:
        real = np.asarray(handle["data"], dtype=np.float32)
    data = make_synthetic(n_train=4, n_valid=4, label_source=mosi_folder)
    np.testing.assert_allclose(np.sort(data["test"].labels), np.sort(real))
    assert int((data["test"].labels == 0).sum()) == 30


def test_synthetic_fallback_labels_come_from_embedded_histogram() -> None:
    labels = make_synthetic(n_train=500, n_valid=2, n_test=2, text_dim=None)["train"].labels
    support = np.array([value for value, _ in MOSI_LABEL_HISTOGRAM], dtype=np.float32)
    assert np.isin(labels, support).all()
    assert -3 <= labels.min() and labels.max() <= 3 and 0.5 < (labels >= 0).mean() < 0.7


def _heldout_fit(train: np.ndarray, target_train, test: np.ndarray, target_test) -> float:
    """Correlation between held-out targets and their ridge prediction (mean over columns)."""
    design = np.c_[train, np.ones(len(train))]
    gram = design.T @ design + 1e-3 * len(train) * np.eye(design.shape[1])
    weights = np.linalg.solve(gram, design.T @ target_train)
    predicted = np.c_[test, np.ones(len(test))] @ weights
    if predicted.ndim == 1:
        return float(np.corrcoef(predicted, target_test)[0, 1])
    return float(np.mean([np.corrcoef(p, t)[0, 1] for p, t in zip(predicted.T, target_test.T)]))


@pytest.mark.parametrize(("dependency", "low", "high"), [(0.0, -0.2, 0.2), (1.0, 0.7, 1.0)])
def test_dependency_controls_shared_and_sentiment_signal(
    dependency: float, low: float, high: float
) -> None:
    data = make_synthetic(
        n_train=400,
        n_valid=1,
        n_test=200,
        text_dim=None,
        dependency=dependency,
        length_range=(4, 20),
        seed=1,
    )

    def means(split: str, modality: str) -> np.ndarray:
        return np.stack([getattr(segment, modality).mean(axis=0) for segment in data[split]])

    audio_to_video = _heldout_fit(
        means("train", "audio"),
        means("train", "video"),
        means("test", "audio"),
        means("test", "video"),
    )
    both = {
        split: np.c_[means(split, "audio"), means(split, "video")] for split in ("train", "test")
    }
    sentiment = _heldout_fit(both["train"], data["train"].labels, both["test"], data["test"].labels)
    assert low < audio_to_video < high
    assert low < sentiment < high


def test_synthetic_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"dependency must be a number in \[0, 1\], got 1.5"):
        make_synthetic(dependency=1.5)
    # What the command line's --data-option passes when a value is not a number: named.
    with pytest.raises(ValueError, match="dependency must be a number in .*, got 'high'"):
        make_synthetic(dependency="high")
    with pytest.raises(ValueError, match="n_train must be an int >= 1, got 'abc'"):
        load_dataset("synthetic:mosi", n_train="abc")
    with pytest.raises(ValueError, match=r"dims\[1\] must be an int >= 1, got 0"):
        make_planted(1.0, 8, 4, 4, dims=(4, 0, 4))
    with pytest.raises(
        ValueError, match="unknown kind 'iemocap'; valid values are 'mosi', 'mosei'"
    ):
        load_dataset("synthetic:iemocap")
    with pytest.raises(ValueError, match="n_train must be an int >= 1, got 0"):
        make_synthetic(n_train=0)
    with pytest.raises(TypeError, match="apply to 'synthetic:...' paths only"):
        load_dataset("some.pkl", n_train=3)
