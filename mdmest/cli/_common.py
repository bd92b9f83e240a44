"""What every subcommand shares: the one-line error convention and the argument types.

A user error (a bad option, a file that cannot be read, a setting the library rejects before any
work starts) is one line ``mdmest <command>: error: <message>`` on stderr and exit status 2. A
traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "UserError",
    "add_output_arguments",
    "add_progress_arguments",
    "check_output_file",
    "check_output_folder",
    "collected_warnings",
    "emit_json",
    "one_line_warnings",
    "require",
    "show_progress",
    "stage",
    "Parser",
    "fail",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "key_value",
    "comma_choices",
    "print_metrics",
    "torchrun_session",
]


class UserError(Exception):
    """A mistake in the command line or the files it names; reported in one line, exit status 2."""


def fail(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` as one line on stderr and exit with status 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other user error of ``mdmest``."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see '{self.prog} --help')")


def _number(text: str, kind: type, accept, expected: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a number > 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def key_value(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; VALUE is read as JSON when it parses (``4``, ``true``, ``[1, 2]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with a Python name as KEY, got {text!r}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def comma_choices(choices: Sequence[str]):
    """An argument type for a comma-separated list of values among ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        unknown = [v for v in values if v not in choices]
        if unknown or not values:
            valid = ", ".join(choices)
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list among {valid}, got {text!r}"
            )
        return values

    return parse


def print_metrics(title: str, metrics: dict[str, float]) -> None:
    print(f"{title}: " + "  ".join(f"{name} {value:.4f}" for name, value in metrics.items()))


@contextlib.contextmanager
def torchrun_session(device: str) -> Iterator[tuple[str, bool]]:
    """Under ``torchrun`` (RANK and WORLD_SIZE set, no process group yet): the default process
    group for the block (gloo on the CPU, NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``), with
    the standard output of ranks other than 0 silenced; destroyed at exit. Yields the device this
    rank uses and whether it is rank 0. Outside ``torchrun`` it does nothing."""
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        yield device, True
        return
    import torch

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    cuda = device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        if rank == 0:
            yield device, True
        else:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                yield device, False
        # Every rank done with its collectives before any tears the group down: a rank that
        # destroyed it while another was still in its last one was seen to abort at exit
        # ("terminate called without an active exception").
        dist.barrier()
    finally:
        sys.stdout.flush()
        dist.destroy_process_group()


# -- optional packages ------------------------------------------------------------------------------
def require(*needs: tuple[str, str]) -> None:
    """Check, before any work, that each ``(module, purpose)`` of ``needs`` is installed; the first
    that is not is a [`UserError`][mdmest.cli._common.UserError] naming the extra that installs it,
    e.g. ``plots need matplotlib: pip install 'mdmest[bench]'``."""
    from mdmest._validation import missing_extra

    for module, purpose in needs:
        message = missing_extra(module, purpose)
        if message is not None:
            raise UserError(message)


# -- warnings ---------------------------------------------------------------------------------------
_WARNINGS: list[dict[str, str]] = []


def collected_warnings() -> list[dict[str, str]]:
    """The warnings shown since the command started, as ``{"category": ..., "message": ...}``
    (what every JSON written by the command carries)."""
    return [dict(w) for w in _WARNINGS]


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Show each warning raised in the block as one line ``<prog>: warning: <message>`` on stderr
    (no file path, no source line) and collect it for ``collected_warnings``."""
    _WARNINGS.clear()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        _WARNINGS.append({"category": category.__name__, "message": text})
        try:
            print(f"{prog}: warning: {text}", file=sys.stderr if file is None else file)
        except (OSError, ValueError):  # stderr closed: the warning is still in the JSON
            pass

    saved = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved


# -- progress ---------------------------------------------------------------------------------------
def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``; by default bars are shown when stderr is a terminal."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress bars even when stderr is not a terminal",
    )
    group.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="hide progress bars (default: shown only when stderr is a terminal)",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: ``--progress`` / ``--no-progress``, else only on a terminal."""
    choice = getattr(args, "progress", None)
    if choice is not None:
        return bool(choice)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def stage(args: argparse.Namespace, prog: str, message: str) -> None:
    """One line on stderr for a stage of a long command, when no progress bar shows it (stderr is
    a log file, or ``--no-progress``): a log gets one line per stage, never a bar's redraws."""
    if not show_progress(args):
        print(f"{prog}: {message}", file=sys.stderr, flush=True)


# -- output files -----------------------------------------------------------------------------------
def add_output_arguments(parser: argparse.ArgumentParser, *, what: str = "the result") -> None:
    """``--out FILE`` (``-``: standard output) and ``--json``."""
    parser.add_argument(
        "--out",
        metavar="FILE",
        help=f"write {what} as JSON to FILE (atomically; a symbolic link is written through; "
        "'-': standard output)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON on standard output (the text report goes to stderr)",
    )


def _probe(folder: Path, option: str, given: str) -> None:
    """Create and remove a temporary file in ``folder``: the check a permission bit cannot make
    (root ignores it; a read-only file system or an immutable folder stops root too)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".mdmest-probe-")
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(f"{option} {given}: cannot write in {folder}: {reason}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_output_file(path: str | os.PathLike | None, option: str = "--out") -> Path | None:
    """Check, before any work, that a result can be written to ``path``; return the file written
    (symbolic links resolved), or None for ``None`` and ``-`` (standard output)."""
    from mdmest.io import writable_target

    if path is None or str(path) == "-":
        return None
    given = str(path)
    try:
        target = writable_target(path)
    except OSError as error:
        hint = ""
        if given.startswith(("/dev/", "/proc/")):
            hint = "; for standard output use --json or --out -"
        raise UserError(f"{option} {given}: {error.strerror or error}{hint}") from None
    parent = target.parent
    if not parent.exists():
        raise UserError(f"{option} {given}: no such directory {parent}")
    if not parent.is_dir():
        raise UserError(f"{option} {given}: {parent} is not a directory")
    _probe(parent, option, given)
    return target


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check, before any work, that results can be written in the folder ``path`` (created when
    missing); a file there, a file above it, or a folder that cannot be written is a
    [`UserError`][mdmest.cli._common.UserError]."""
    folder = Path(path)
    given = str(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {given} is a file; give a folder for the results")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {given}: {existing} is a file, not a folder")
    _probe(existing, option, given)
    return folder


def emit_json(record: dict[str, Any], path: str | os.PathLike | None) -> None:
    """Write ``record`` with the mdmest version and the warnings shown so far: to ``path``
    (atomically, through a link) or, for ``-`` or None, to standard output."""
    from mdmest import __version__
    from mdmest.io import atomic_write_text

    full = {**record, "mdmest_version": __version__, "warnings": collected_warnings()}
    text = json.dumps(full, indent=2, default=_jsonable) + "\n"
    if path is None or str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)
