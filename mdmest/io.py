"""Atomic file writes: a half-written file never replaces a good one.

Used by the library for checkpoints, results and datasets, and public so that scripts (the
benchmarks among them) write their results the same way.

A path that is a symbolic link is written through: the new file replaces the link's target and
the link stays a link. A path that exists and is not a regular file (a directory, a device such as
``/dev/stdout`` or ``/dev/null``, a pipe, a socket) is refused before anything is written, since
replacing it by a file would change what every other program sees there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_open", "atomic_write_text"]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def writable_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` replaces: ``path`` with its symbolic links resolved.

    Raises
    ------
    IsADirectoryError
        If the target is a directory.
    OSError
        If the target exists and is not a regular file (``errno.EINVAL``: a device, a pipe, a
        socket), or a link in the chain points in a loop.

    Examples
    --------
    >>> writable_target("/dev/null")
    Traceback (most recent call last):
    ...
    OSError: [Errno 22] refusing to replace a device with a file (write to a regular file): '/dev/null'
    """
    try:
        # Follows the links: /dev/stdout is a link to /proc/self/fd/1, a terminal or a pipe.
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "symbolic links point in a loop", str(path)) from None
        mode = None  # a component of the path is not a directory: the write reports it
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory (give a file name)", str(path))
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(
            errno.EINVAL,
            f"refusing to replace {_kind(mode)} with a file (write to a regular file)",
            str(path),
        )
    target = Path(os.path.realpath(path))
    # /dev/stdout, /dev/fd/N, /proc/self/fd/N: another process's open file (a log a shell
    # redirected, say) that a rename would swap out from under it; and device or kernel files.
    if any(_special(p) for p in (Path(os.path.abspath(path)), target)):
        raise OSError(
            errno.EINVAL,
            "refusing to replace a device, stream or kernel file with a file (write to a "
            "regular file)",
            str(path),
        )
    return target


def _special(path: Path) -> bool:
    parts = path.parts
    if len(parts) > 2 and parts[1] == "dev" and parts[2] == "shm":  # a tmpfs of regular files
        return False
    return len(parts) > 1 and parts[1] in ("dev", "proc", "sys")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside the target of ``path`` for binary writing; on success it is
    flushed to disk and renamed over the target in one step, on any error it is removed and the
    target is left untouched. A symbolic link is written through (see
    ``writable_target``, which also names what is refused)."""
    path = writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp creates the file readable by its owner only; give it the mode any new file gets,
    # or the mode of the file it replaces.
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8"))
