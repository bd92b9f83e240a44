"""Atomic writes: a failed write leaves the old file, a finished one gets the usual mode."""

import os
import stat

import pytest

from mdmest.io import atomic_open, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_text(path, "good")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write(b"half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_written_file_gets_the_mode_of_any_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644
