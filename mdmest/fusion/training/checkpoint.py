"""Checkpoint files of the trainer: atomic writing and checked reading (file I/O only).

A checkpoint (``best.pt``, ``last.pt``) is a ``torch.save`` of a dict of tensors and plain
containers only (what [`Trainer.state_dict`][mdmest.fusion.training.Trainer.state_dict] returns), so
:func:`read_checkpoint` loads it with ``weights_only=True``. What the dict holds is the trainer's
business; this module knows only its format tag, its version and the keys version 1 requires.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mdmest.io import atomic_open, atomic_write_text

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "REQUIRED_KEYS",
    "CheckpointError",
    "read_checkpoint",
    "save_checkpoint",
    "write_json",
]

CHECKPOINT_FORMAT = "mdmest-fusion-checkpoint"
CHECKPOINT_VERSION = 1
#: What a checkpoint of version 1 holds at least (Trainer.state_dict writes them all).
REQUIRED_KEYS = (
    "format",
    "version",
    "epoch",
    "global_step",
    "config",
    "model_spec",
    "metadata",
    "model_state",
    "measure_state",
    "optimizer_state",
    "critic_optimizer_state",
    "scheduler_state",
    "best_epoch",
    "best_value",
    "epochs_without_improvement",
    "history",
    "rng_state",
)


class CheckpointError(ValueError):
    """A file that is not an mdmest fusion checkpoint (or one newer than this mdmest reads)."""


def _not_a_checkpoint(path: Path, found: str) -> CheckpointError:
    return CheckpointError(
        f"{str(path)!r} is not an mdmest fusion checkpoint: expected a best.pt or last.pt written "
        f"by mdmest train, found {found}"
    )


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :class:`~mdmest.fusion.training.Trainer`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        A ``ValueError`` saying what the file holds instead, if it is not an mdmest fusion
        checkpoint (an empty, text or NumPy file, another torch file, ...) or has a newer version.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "notes.txt"
    ...     _ = path.write_text("not a checkpoint")
    ...     read_checkpoint(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mdmest.fusion.training.checkpoint.CheckpointError: '...notes.txt' is not an mdmest fusion checkpoint: expected a best.pt or last.pt written by mdmest train, found a text file
    """
    path = Path(path)
    if path.is_dir():
        raise _not_a_checkpoint(path, "a directory")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise _not_a_checkpoint(path, "an empty file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as err:
        raise _not_a_checkpoint(path, _describe_unreadable(path, err)) from err
    if not isinstance(checkpoint, dict):
        raise _not_a_checkpoint(path, f"a torch file holding a {type(checkpoint).__name__}")
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise _not_a_checkpoint(path, f"a torch file holding a dict with keys {_keys(checkpoint)}")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise _not_a_checkpoint(path, f"a fusion checkpoint without the entries {missing}")
    version = checkpoint["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise _not_a_checkpoint(path, f"a fusion checkpoint of version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint version {version}; this mdmest reads "
            f"up to {CHECKPOINT_VERSION}"
        )
    config = checkpoint["config"]
    if isinstance(config, dict) and config.get("penalty") == "wasserstein":
        # The trainer records the Wasserstein normalisation it chose for the model; a checkpoint
        # written before it chose one per model was trained without normalisation.
        config["measure_kwargs"] = {"normalize": False, **(config.get("measure_kwargs") or {})}
    return checkpoint


def _keys(mapping: dict) -> str:
    keys = sorted(str(key) for key in mapping)
    shown = ", ".join(repr(key) for key in keys[:6])
    return f"[{shown}{', ...' if len(keys) > 6 else ''}]"


def _describe_unreadable(path: Path, err: Exception) -> str:
    """What a file that ``torch.load(weights_only=True)`` refused looks like."""
    if isinstance(err, pickle.UnpicklingError) and "unsupported global" in str(err).lower():
        return "a pickle of objects other than tensors and plain containers"
    with open(path, "rb") as stream:
        head = stream.read(512)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "a truncated or damaged zip archive"
        if names and all(name.endswith(".npy") for name in names):
            return "a NumPy .npz archive"
        return "a zip archive that is not a torch file"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if all(byte >= 32 or byte in b"\t\n\r\f" for byte in head):
        return "a text file"
    return f"binary data that torch.load cannot read ({type(err).__name__})"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically (a crash leaves the old file intact)."""
    with atomic_open(path) as stream:
        torch.save(state, stream)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically (a crash leaves the old file intact)."""
    atomic_write_text(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")
