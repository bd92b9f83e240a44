"""Shared fixtures of the fusion tests: the real data in ../shared/data, small synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mdmest.fusion.data import MultimodalDataset, make_synthetic

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def single_thread():
    """The fusion models under test are tiny: one thread avoids oversubscribing the two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mosi_folder() -> Path:
    """The folder with the real CMU-MOSI files (dev_misa_format.pkl, y_*.h5); skips if absent."""
    folder = SHARED_DATA / "mosi"
    if not (folder / "dev_misa_format.pkl").is_file():
        pytest.skip(f"real MOSI data not found at {folder} (expected ../shared/data/mosi/)")
    return folder


@pytest.fixture(scope="session")
def tiny_synthetic() -> MultimodalDataset:
    """A small synthetic MOSI-shaped dataset (6/3/4 segments, 16-d text)."""
    return make_synthetic("mosi", n_train=6, n_valid=3, n_test=4, text_dim=16, seed=3)
