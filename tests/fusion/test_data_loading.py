"""Tests of mdmest.fusion.data.loading: load_for_training, clear errors on files that are not
datasets, and the dataset preset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mdmest.fusion.data import (
    DatasetFormatError,
    MultimodalDataset,
    PickleReadError,
    Segment,
    SplitData,
    load_dataset,
    load_for_training,
    loading,
    make_synthetic,
    safe_pickle,
    text,
    write_dataset,
    write_synthetic,
)

SIZES = {"n_train": 5, "n_valid": 3, "n_test": 4}
SPLITS = ("train", "valid", "test")
EXPECTED = "MAG-BERT, MMSA or MISA pickle file or folder, or synthetic:mosi / synthetic:mosei"


def _fake_embed_words(sentences, *, batch_size: int = 32, device: str = "cpu") -> list:
    """Stands in for MiniLM: one 384-d row per word."""
    return [np.full((len(words), text.MINILM_DIM), 0.5, np.float32) for words in sentences]


def _segments(n: int, d_audio: int, d_video: int, d_text: int | None = None) -> list[Segment]:
    rng = np.random.default_rng(n)
    return [
        Segment(
            id=f"s{i}",
            label=float(i % 7 - 3),
            audio=rng.normal(size=(3, d_audio)).astype(np.float32),
            video=rng.normal(size=(3, d_video)).astype(np.float32),
            text=None if d_text is None else rng.normal(size=(3, d_text)).astype(np.float32),
            words=["a", "b", "c"],
        )
        for i in range(n)
    ]


def _dataset(d_audio: int, d_video: int, d_text: int | None = None) -> MultimodalDataset:
    return MultimodalDataset(
        {name: SplitData(_segments(3, d_audio, d_video, d_text), name) for name in SPLITS}
    )


# ------------------------------------------------------------------------------ load_for_training


def test_load_for_training_divides_a_single_split_file(tmp_path: Path) -> None:
    write_synthetic(tmp_path, "misa", n_train=20, n_valid=2, n_test=2)
    notes: list[str] = []
    data = load_for_training(tmp_path / "train.pkl", split_seed=3, log=notes.append)
    assert {name: len(split) for name, split in data.items()} == {
        "train": 14,
        "valid": 3,
        "test": 3,
    }
    assert notes == [
        "one split ('all') divided into train/valid/test = 14/3/3 with seed 3",
    ]
    again = load_for_training(tmp_path / "train.pkl", split_seed=3, log=notes.append)
    other = load_for_training(tmp_path / "train.pkl", split_seed=4, log=notes.append)
    assert again["test"].ids == data["test"].ids != other["test"].ids
    assert data.format == "misa" and data.source == str(tmp_path / "train.pkl")
    assert data.preset == "mosi"


def test_load_for_training_prints_notes_to_stderr_by_default(tmp_path: Path, capsys) -> None:
    write_synthetic(tmp_path, "misa", n_train=20, n_valid=2, n_test=2)
    load_for_training(tmp_path / "train.pkl")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "one split ('all') divided into train/valid/test = 14/3/3 with seed 0\n"


def test_load_for_training_keeps_full_datasets_and_passes_options() -> None:
    notes: list[str] = []
    data = load_for_training("synthetic:mosei", options={**SIZES, "text_dim": 8}, log=notes.append)
    assert [len(split) for split in data.values()] == [5, 3, 4]
    assert data.dims == (8, 74, 35) and data.preset == "mosei" and notes == []
    with pytest.raises(TypeError, match="apply to 'synthetic:...' paths only"):
        load_for_training("some.pkl", options={"n_train": 3})


def test_load_for_training_embeds_words_when_asked(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(text, "embed_words", _fake_embed_words)
    path = write_synthetic(tmp_path / "mosi.pkl", "mag_bert", **SIZES)
    notes: list[str] = []
    words_only = load_for_training(path, log=notes.append)
    assert words_only.d_text is None and notes == []
    embedded = load_for_training(path, text_features=True, log=notes.append)
    assert embedded.dims == (text.MINILM_DIM, 74, 47)
    assert notes == ["embedding the words with MiniLM (offline) ..."]
    assert embedded.preset == "mosi" and embedded.format == "mag_bert"
    # Data that has text features keeps them.
    with_text = load_for_training("synthetic:mosi", options=SIZES, text_features=True, log=print)
    assert with_text.d_text == 300


def test_load_for_training_needs_train_and_valid(monkeypatch) -> None:
    def two_splits(path, format="auto", **options) -> MultimodalDataset:
        full = make_synthetic(**SIZES)
        return MultimodalDataset({"train": full["train"], "test": full["test"]})

    monkeypatch.setattr(loading, "load_dataset", two_splits)
    with pytest.raises(ValueError, match=r"x\.pkl has splits \['train', 'test'\]; .* \['valid'\]"):
        load_for_training("x.pkl", log=print)


# ------------------------------------------------------------------------------ files that are not datasets


def _one_sentence(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and message.count(". ") == 0
    return message


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_numpy_files_are_named_as_such(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"views{suffix}"
    if suffix == ".npz":
        np.savez(path, x=np.zeros((4, 2)), y=np.ones((4, 3)))
        what = "a NumPy archive of arrays (.npz, what `mdmest estimate` reads)"
    else:
        np.save(path, np.zeros((4, 2)))
        what = "a NumPy array file (.npy, what `mdmest estimate` reads)"
    with pytest.raises(DatasetFormatError) as caught:
        load_dataset(path)
    message = _one_sentence(caught.value)
    assert message == f"{path} is {what}, not a dataset; expected a {EXPECTED}"
    with pytest.raises(DatasetFormatError, match="not a dataset"):
        load_for_training(path, log=print)


def test_npz_renamed_pkl_in_a_folder_is_refused(tmp_path: Path) -> None:
    write_synthetic(tmp_path, "misa", **SIZES)
    with (tmp_path / "dev.pkl").open("wb") as stream:
        np.savez(stream, x=np.zeros(3))
    with pytest.raises(DatasetFormatError, match=r"dev\.pkl is a NumPy archive of arrays"):
        load_dataset(tmp_path)


def test_other_archives_and_hdf5_are_named(tmp_path: Path, mosi_folder: Path) -> None:
    import zipfile

    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("archive/data.pkl", b"x")
    with pytest.raises(DatasetFormatError, match="is a zip archive"):
        load_dataset(archive)
    with pytest.raises(DatasetFormatError, match="y_test.h5 is an HDF5 file, not a dataset"):
        load_dataset(mosi_folder / "y_test.h5")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pkl"
    path.touch()
    with pytest.raises(DatasetFormatError) as caught:
        load_dataset(path)
    assert (
        _one_sentence(caught.value)
        == f"{path} is an empty file, not a dataset; expected a {EXPECTED}"
    )
    with pytest.raises(PickleReadError, match="empty.pkl is empty, not a pickle"):
        safe_pickle.safe_load(path)


def test_non_pickle_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("label,audio\n1,2\n")
    with pytest.raises(DatasetFormatError) as caught:
        load_dataset(path)
    assert _one_sentence(caught.value) == (
        f"{path} is a file that is not a pickle (it begins with b'label,au'), not a dataset; "
        f"expected a {EXPECTED}"
    )


def test_corrupt_pickle_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"train": list(range(100))}, protocol=4)[:30])
    with pytest.raises(ValueError, match=r"cut\.pkl: could not read the pickle") as caught:
        load_dataset(path)
    assert isinstance(caught.value, pickle.UnpicklingError)
    assert isinstance(caught.value, PickleReadError)
    assert "\n" not in str(caught.value)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^no dataset at .*missing\.pkl$"):
        load_dataset(tmp_path / "missing.pkl")
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        load_for_training(tmp_path / "missing.pkl", log=print)


# ------------------------------------------------------------------------------ preset


def test_synthetic_datasets_know_their_preset() -> None:
    assert make_synthetic("mosi", **SIZES).preset == "mosi"
    assert load_dataset("synthetic:mosei", **SIZES).preset == "mosei"


@pytest.mark.parametrize(
    ("kind", "format"), [("mosi", "mag_bert"), ("mosei", "misa"), ("mosei", "mmsa_unaligned")]
)
def test_written_files_give_their_preset(tmp_path: Path, kind: str, format: str) -> None:
    path = tmp_path / ("misa" if format == "misa" else "data.pkl")
    write_synthetic(path, format, kind=kind, text_dim=8, **SIZES)
    assert load_dataset(path).preset == kind


def test_preset_from_feature_widths(tmp_path: Path) -> None:
    # MMSA's MOSI file: audio 5, vision 20.
    write_dataset(_dataset(5, 20, d_text=8), tmp_path / "aligned_50.pkl", "mmsa_aligned")
    assert load_dataset(tmp_path / "aligned_50.pkl").preset == "mosi"
    # Widths no known corpus has: unknown.
    write_dataset(_dataset(4, 2), tmp_path / "other.pkl", "mag_bert")
    assert load_dataset(tmp_path / "other.pkl").preset is None
    assert _dataset(74, 47).preset is None  # built by hand: not guessed


def test_real_mosi_file_is_mosi(mosi_folder: Path) -> None:
    assert load_dataset(mosi_folder / "dev_misa_format.pkl").preset == "mosi"


def test_preset_survives_split_and_text_features(monkeypatch) -> None:
    monkeypatch.setattr(text, "embed_words", _fake_embed_words)
    data = make_synthetic("mosei", text_dim=None, **SIZES)
    assert data.split(source="train", fractions=(0.4, 0.2, 0.4)).preset == "mosei"
    assert data.with_text_features("minilm").preset == "mosei"
    assert "preset='mosei'" in repr(data)


def test_preset_must_be_known() -> None:
    split = SplitData(_segments(2, 4, 2))
    with pytest.raises(
        ValueError, match="unknown preset 'iemocap'; valid values are 'mosi', 'mosei'"
    ):
        MultimodalDataset({"all": split}, preset="iemocap")
