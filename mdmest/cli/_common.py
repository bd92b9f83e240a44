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
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

__all__ = [
    "UserError",
    "Parser",
    "fail",
    "positive_int",
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
