"""Atomic writes: a failed write leaves the old file, a finished one gets the usual mode, a link
is written through, a device or a directory is refused."""

import errno
import os
import stat

import pytest

from mdmest.io import atomic_open, atomic_write_text, writable_target


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


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "data" / "result.json"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the replaced file's mode is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
    # A dangling link: the file is created where it points.
    dangling = tmp_path / "later.json"
    dangling.symlink_to(tmp_path / "data" / "later.json")
    atomic_write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "data" / "later.json").read_text() == "made"


@pytest.mark.parametrize("device", ["/dev/null", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/2"])
def test_a_device_or_stream_is_refused_before_anything_is_written(device, tmp_path):
    mode = os.stat("/dev/null").st_mode
    with pytest.raises(OSError, match="refusing to replace") as raised:
        atomic_write_text(device, "x")
    assert raised.value.errno == errno.EINVAL and raised.value.filename == device
    assert os.stat("/dev/null").st_mode == mode and stat.S_ISCHR(mode)
    with pytest.raises(OSError, match="refusing to replace"):
        writable_target(device)


def test_a_directory_and_a_link_to_one_are_refused(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "to_folder").symlink_to(tmp_path / "folder")
    for path in (tmp_path / "folder", tmp_path / "to_folder"):
        with pytest.raises(IsADirectoryError, match="is a directory"):
            atomic_write_text(path, "x")
    assert list((tmp_path / "folder").iterdir()) == []
    assert (tmp_path / "to_folder").is_symlink()


def test_a_path_under_a_file_fails_and_leaves_the_file(tmp_path):
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "a_file" / "x.json", "x")
    assert (tmp_path / "a_file").read_text() == "keep"
