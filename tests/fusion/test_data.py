"""Tests of mdmest.fusion.data: loaders, restricted unpickling, writers, containers, batching."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mdmest.fusion.data import (
    DatasetFormatError,
    MultimodalDataset,
    Segment,
    SplitData,
    UnsafePickleError,
    collate,
    load_dataset,
    make_loader,
    make_synthetic,
    safe_pickle,
    split_dataset,
    write_dataset,
    write_synthetic,
)

SIZES = {"n_train": 5, "n_valid": 3, "n_test": 4}


def _segment(index: int, length: int = 3, d_audio: int = 4, d_video: int = 2) -> Segment:
    rng = np.random.default_rng(index)
    return Segment(
        id=f"s{index}",
        label=float(index % 7 - 3),
        audio=rng.normal(size=(length, d_audio)).astype(np.float32),
        video=rng.normal(size=(length, d_video)).astype(np.float32),
        words=[f"w{i}" for i in range(length)],
    )


def _misa_items(n: int = 5) -> list:
    return [
        ((np.arange(3), s.video, s.audio, s.words), np.array([[s.label]], np.float32), s.id)
        for s in (_segment(i) for i in range(n))
    ]


def _dump(obj: object, path: Path) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


def _mmsa_content(tmp_path: Path, format: str) -> dict:
    file = write_synthetic(tmp_path / "mmsa.pkl", format, text_dim=8, **SIZES)
    with file.open("rb") as stream:
        return pickle.load(stream)


# ------------------------------------------------------------------------------------ real data


def test_real_mosi_segments_load(mosi_folder: Path) -> None:
    data = load_dataset(mosi_folder / "dev_misa_format.pkl")
    assert data.format == "misa" and list(data) == ["all"]
    split = data["all"]
    assert len(split) == 229
    assert split.dims == (None, 74, 47)
    assert int((split.labels >= 0).sum()) == 137
    lengths = [segment.audio.shape[0] for segment in split]
    assert min(lengths) == 2 and max(lengths) == 44
    for segment in split:
        assert segment.video.shape[0] == len(segment.words) == segment.audio.shape[0]
        assert segment.audio.dtype == np.float32 and segment.text is None
    assert split[0].id == "WKA5OygbEKI[0]" and split[0].words[:2] == ["uh", "i"]


def test_real_mosi_split_is_seeded_and_complete(mosi_folder: Path) -> None:
    data = load_dataset(mosi_folder / "dev_misa_format.pkl")
    divided = data.split(fractions=(0.7, 0.15, 0.15), seed=0)
    assert {name: len(split) for name, split in divided.items()} == {
        "train": 160,
        "valid": 34,
        "test": 35,
    }
    assert sorted(sum((s.ids for s in divided.values()), [])) == sorted(data["all"].ids)
    assert data.split(seed=0)["test"].ids == divided["test"].ids
    assert data.split(seed=1)["test"].ids != divided["test"].ids


@pytest.mark.slow
def test_minilm_word_features_of_real_segments(mosi_folder: Path) -> None:
    split = load_dataset(mosi_folder / "dev_misa_format.pkl")["all"].subset([0, 1])
    embedded = split.with_text_features("minilm")
    assert embedded is split.with_text_features("minilm")  # cached: MiniLM runs once
    for segment in embedded:
        assert segment.text.shape == (len(segment.words), 384)
        assert np.isfinite(segment.text).all() and np.abs(segment.text).sum() > 0
    batch = collate(list(embedded))
    assert batch["text"].shape == (2, 18, 384)
    assert torch.equal(batch["text_lengths"], batch["audio_lengths"])


def test_with_text_features_rejects_unknown_embedder(tiny_synthetic: MultimodalDataset) -> None:
    with pytest.raises(ValueError, match="unknown embedder 'glove'; valid values are 'minilm'"):
        tiny_synthetic.with_text_features("glove")


def test_optional_dependencies_are_imported_lazily() -> None:
    code = (
        "import sys, mdmest, mdmest.fusion.data, mdmest.fusion.metrics;"
        "print([m for m in ('transformers', 'sklearn', 'h5py') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("format", ["mag_bert", "mmsa_aligned", "mmsa_unaligned", "misa"])
def test_write_then_load_round_trip(tmp_path: Path, format: str) -> None:
    options = {"seed": 4, "text_dim": 8, **SIZES}
    path = tmp_path / ("misa" if format == "misa" else f"{format}.pkl")
    write_synthetic(path, format, **options)
    loaded = load_dataset(path)
    assert loaded.format == format and load_dataset(path, format=format).format == format
    original = make_synthetic(aligned=format != "mmsa_unaligned", **options)
    assert list(loaded) == ["train", "valid", "test"]
    for name, split in original.items():
        assert len(loaded[name]) == len(split)
        for expected, got in zip(split, loaded[name]):
            assert got.id == expected.id and got.words == expected.words
            assert got.label == pytest.approx(expected.label, abs=1e-6)
            np.testing.assert_array_equal(got.audio, expected.audio)
            np.testing.assert_array_equal(got.video, expected.video)
            if format.startswith("mmsa"):
                np.testing.assert_array_equal(got.text, expected.text)
            else:
                assert got.text is None
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["misa", "train.pkl", "dev.pkl", "test.pkl"] if format == "misa" else [path.name]
    )


def test_unaligned_round_trip_keeps_own_lengths(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "u.pkl", "mmsa_unaligned", text_dim=8, **SIZES)
    segment = load_dataset(path)["train"][0]
    assert segment.audio.shape[0] != segment.text.shape[0] or segment.video.shape[0] != len(
        segment.words
    )


def test_single_misa_file_is_one_split(tmp_path: Path) -> None:
    write_synthetic(tmp_path, "misa", **SIZES)
    data = load_dataset(tmp_path / "train.pkl")
    assert list(data) == ["all"] and len(data["all"]) == SIZES["n_train"]


def test_format_mismatch_and_unknown_format(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "m.pkl", "mag_bert", **SIZES)
    with pytest.raises(DatasetFormatError, match="format 'mmsa_aligned' requested.*'mag_bert'"):
        load_dataset(path, format="mmsa_aligned")
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(path, format="csv")
    with pytest.raises(DatasetFormatError, match="not a known dataset format"):
        load_dataset(_dump({"a": 1}, tmp_path / "other.pkl"))
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        load_dataset(tmp_path / "missing.pkl")


def test_incomplete_misa_folder(tmp_path: Path) -> None:
    _dump(_misa_items(), tmp_path / "train.pkl")
    with pytest.raises(FileNotFoundError, match="missing dev.pkl"):
        load_dataset(tmp_path)


# ------------------------------------------------------------------------------------ pickles


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _dump({"train": [_Exploit(marker)], "dev": [], "test": []}, tmp_path / "evil.pkl")
    with pytest.raises(UnsafePickleError, match=r"refused global '(posix|os|nt)\.system'"):
        load_dataset(path)
    assert not marker.exists()
    # The unpickler refuses before building anything, and the error names the file.
    with pytest.raises(pickle.UnpicklingError, match="evil.pkl"):
        safe_pickle.safe_load(path)


@pytest.mark.parametrize("target", [eval, print, Segment, np.load])
def test_other_globals_are_refused(tmp_path: Path, target: object) -> None:
    class Reducer:
        def __reduce__(self) -> tuple:
            return (target, ("1",))

    path = _dump([Reducer()], tmp_path / "bad.pkl")
    with pytest.raises(UnsafePickleError, match="refused global"):
        load_dataset(path)


def test_malicious_file_in_misa_folder(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    write_synthetic(tmp_path, "misa", **SIZES)
    _dump([_Exploit(marker)], tmp_path / "test.pkl")
    with pytest.raises(UnsafePickleError, match="test.pkl"):
        load_dataset(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_load_reads_numpy_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    content = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.array(["ab", "c"]),
        "o": np.array(["x", None], dtype=object),
        "scalar": np.float64(1.5),
        "bytes": b"\x00\xff",
        "containers": [(1, 2), {3}, frozenset({4})],
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = safe_pickle.safe_load(path)
    np.testing.assert_array_equal(loaded["x"], content["x"])
    assert loaded["s"].tolist() == ["ab", "c"] and loaded["o"].tolist() == ["x", None]
    assert loaded["scalar"] == 1.5 and loaded["bytes"] == b"\x00\xff"
    assert loaded["containers"] == content["containers"]


def test_codecs_encode_only_latin1(tmp_path: Path) -> None:
    data = pickle.dumps(b"abc", protocol=2).replace(b"latin1", b"rot_13")
    path = tmp_path / "codec.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="rot_13"):
        safe_pickle.safe_load(path)


def test_truncated_and_garbage_pickles_name_the_file(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "full.pkl", "mag_bert", **SIZES)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(pickle.UnpicklingError, match="truncated.pkl.*truncated or corrupt"):
        load_dataset(truncated)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetFormatError, match="garbage.pkl is a file that is not a pickle"):
        load_dataset(garbage)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(pickle.UnpicklingError, match="corrupt.pkl.*truncated or corrupt") as caught:
        load_dataset(corrupt)
    assert isinstance(caught.value, ValueError)


# ------------------------------------------------------------------------------------ bad content


def test_mmsa_missing_key(tmp_path: Path) -> None:
    content = _mmsa_content(tmp_path, "mmsa_aligned")
    del content["valid"]["audio"]
    with pytest.raises(DatasetFormatError, match="split 'valid', key 'audio': missing"):
        load_dataset(_dump(content, tmp_path / "bad.pkl"))


def test_mmsa_wrong_shape(tmp_path: Path) -> None:
    content = _mmsa_content(tmp_path, "mmsa_aligned")
    content["test"]["vision"] = content["test"]["vision"][:, :5]
    with pytest.raises(DatasetFormatError, match="split 'test', key 'vision': aligned data needs"):
        load_dataset(_dump(content, tmp_path / "bad.pkl"))
    content = _mmsa_content(tmp_path, "mmsa_unaligned")
    content["train"]["audio_lengths"][1] = 10_000
    with pytest.raises(DatasetFormatError, match="split 'train', key 'audio_lengths'"):
        load_dataset(_dump(content, tmp_path / "bad.pkl"))


def test_mmsa_nan_names_split_key_index(tmp_path: Path) -> None:
    content = _mmsa_content(tmp_path, "mmsa_aligned")
    content["train"]["audio"][2, 0, 1] = np.nan
    with pytest.raises(DatasetFormatError, match=r"split 'train', key 'audio', index 2: .*nan"):
        load_dataset(_dump(content, tmp_path / "bad.pkl"))


def test_mmsa_negative_infinite_audio_becomes_zero(tmp_path: Path) -> None:
    content = _mmsa_content(tmp_path, "mmsa_unaligned")
    content["train"]["audio"][0, 0, :] = -np.inf
    segment = load_dataset(_dump(content, tmp_path / "inf.pkl"))["train"][0]
    assert (segment.audio[0] == 0).all() and np.isfinite(segment.audio).all()


def test_mmsa_lengths_from_mask_or_full(tmp_path: Path) -> None:
    content = _mmsa_content(tmp_path, "mmsa_aligned")
    mask_lengths = content["train"]["text_bert"][:, 1].sum(axis=1)
    data = load_dataset(_dump(content, tmp_path / "a.pkl"))
    assert [s.audio.shape[0] for s in data["train"]] == mask_lengths.tolist()
    for split in content.values():
        del split["text_bert"]
    full = load_dataset(_dump(content, tmp_path / "b.pkl"))
    padded = content["train"]["audio"].shape[1]
    assert {s.audio.shape[0] for s in full["train"]} == {padded}


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda items: items[3][0].__setitem__(1, np.zeros((2, 2))), r"key 'visual', index 3"),
        (lambda items: items[1][0][2].__setitem__((0, 0), np.nan), r"key 'acoustic', index 1"),
        (lambda items: items.__setitem__(2, (items[2][0], np.nan, "x")), r"key 'label', index 2"),
        (lambda items: items.__setitem__(0, ("only", "two")), r"key 'segment', index 0"),
        (lambda items: items[4][0].__setitem__(3, [1, 2, 3]), r"key 'words', index 4"),
        (lambda items: items[1][0].__setitem__(1, np.zeros((3, 9))), r"key 'video', index 1"),
    ],
)
def test_list_format_errors_name_split_key_index(tmp_path: Path, corrupt, message: str) -> None:
    items = [(list(features), label, segment) for features, label, segment in _misa_items()]
    corrupt(items)
    items = [tuple(tuple(x) if isinstance(x, list) else x for x in item) for item in items]
    with pytest.raises(DatasetFormatError, match=f"split 'all', {message}"):
        load_dataset(_dump(items, tmp_path / "bad.pkl"))


# ------------------------------------------------------------------------------------ writing


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    path = write_synthetic(tmp_path / "data.pkl", "mag_bert", **SIZES)
    before = path.read_bytes()

    def failing_dump(obj: object, stream, protocol: int) -> None:
        stream.write(b"\x80\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(safe_pickle.pickle, "dump", failing_dump)
    with pytest.raises(OSError, match="disk full"):
        write_synthetic(path, "mag_bert", seed=9, **SIZES)
    with pytest.raises(OSError, match="disk full"):
        write_synthetic(tmp_path / "new.pkl", "mmsa_aligned", **SIZES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.pkl"]
    assert path.read_bytes() == before


def test_write_rejects_data_the_format_cannot_hold(tmp_path: Path) -> None:
    words_only = make_synthetic(text_dim=None, **SIZES)
    with pytest.raises(
        ValueError, match="split 'train', key 'text', index 0: format 'mmsa_aligned'"
    ):
        write_dataset(words_only, tmp_path / "a.pkl", "mmsa_aligned")
    unaligned = make_synthetic(aligned=False, **SIZES)
    with pytest.raises(ValueError, match="word-aligned formats need one audio and video row"):
        write_dataset(unaligned, tmp_path / "b.pkl", "mag_bert")
    with pytest.raises(ValueError, match="needs equal text, audio and video lengths"):
        write_dataset(unaligned, tmp_path / "c.pkl", "mmsa_aligned")
    with pytest.raises(ValueError, match="unknown format"):
        write_dataset(unaligned, tmp_path / "d.pkl", "hdf5")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ containers


def test_split_data_checks_segments() -> None:
    with pytest.raises(DatasetFormatError, match="has no segments"):
        SplitData([], "train")
    with pytest.raises(
        DatasetFormatError, match=r"split 'train', key 'audio', index 1: expected 4"
    ):
        SplitData([_segment(0), _segment(1, d_audio=5)], "train")
    with_text = Segment("t", 0.0, np.zeros((1, 4)), np.zeros((1, 2)), text=np.zeros((1, 3)))
    with pytest.raises(DatasetFormatError, match="key 'text', index 1"):
        SplitData([with_text, _segment(1)], "valid")
    split = SplitData([_segment(0), _segment(1)], "train")
    assert split.dims == (None, 4, 2) and split.ids == ["s0", "s1"]
    assert split.labels.dtype == np.float32


def test_dataset_mapping_and_split_rules(tiny_synthetic: MultimodalDataset) -> None:
    with pytest.raises(
        KeyError, match=r"no split 'dev'; this dataset has \['train', 'valid', 'test'\]"
    ):
        tiny_synthetic["dev"]
    with pytest.raises(ValueError, match="source must name one of the splits"):
        tiny_synthetic.split()
    assert len(tiny_synthetic.split(source="train", fractions=(0.5, 0.25, 0.25))["valid"]) == 2
    with pytest.raises(DatasetFormatError, match="split 'b' has"):
        MultimodalDataset({"a": SplitData([_segment(0)]), "b": SplitData([_segment(1, d_video=3)])})
    with pytest.raises(ValueError, match="fractions must be three positive numbers"):
        split_dataset(tiny_synthetic["train"], (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="each needs >= 1"):
        split_dataset(tiny_synthetic["valid"], (0.8, 0.1, 0.1))


# ------------------------------------------------------------------------------------ batching


def test_collate_pads_at_the_end(tiny_synthetic: MultimodalDataset) -> None:
    segments = [tiny_synthetic["train"][i] for i in range(3)]
    batch = collate(segments)
    lengths = [s.audio.shape[0] for s in segments]
    assert batch["text"].shape == (3, max(lengths), 16)
    assert batch["audio"].shape == (3, max(lengths), 74) and batch["video"].shape[2] == 47
    for key in ("text_lengths", "audio_lengths", "video_lengths"):
        assert batch[key].dtype == torch.int64 and batch[key].tolist() == lengths
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (3,)
    assert batch["id"] == [s.id for s in segments] and batch["words"][0] == segments[0].words
    for row, segment in enumerate(segments):
        length = lengths[row]
        np.testing.assert_array_equal(batch["audio"][row, :length].numpy(), segment.audio)
        assert (batch["audio"][row, length:] == 0).all() and (
            batch["text"][row, length:] == 0
        ).all()


def test_collate_words_only_and_mixed() -> None:
    batch = collate([_segment(0, length=2), _segment(1, length=5)])
    assert "text" not in batch and batch["text_lengths"].tolist() == [2, 5]
    with_text = Segment("t", 0.0, np.zeros((1, 4)), np.zeros((1, 2)), text=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="some segments have text features"):
        collate([with_text, _segment(1)])
    with pytest.raises(ValueError, match="at least one segment"):
        collate([])


def test_make_loader_is_seeded(tiny_synthetic: MultimodalDataset) -> None:
    split = tiny_synthetic["train"]

    def order(seed: int) -> list[str]:
        return [i for batch in make_loader(split, 4, shuffle=True, seed=seed) for i in batch["id"]]

    assert order(0) == order(0) and sorted(order(0)) == sorted(split.ids)
    assert order(0) != order(1) or order(0) != order(2)
    batches = list(make_loader(split, batch_size=4))
    assert [len(b["id"]) for b in batches] == [4, 2] and batches[0]["id"] == split.ids[:4]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        make_loader(split, batch_size=0)
