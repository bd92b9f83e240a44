"""Checkpoint files of the trainer: atomic writing, checked reading, and the random state they keep.

A checkpoint (``best.pt``, ``last.pt``) is a ``torch.save`` of a dict of tensors and plain
containers only, so :func:`read_checkpoint` loads it with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mdmest.fusion.base import MODALITIES
from mdmest.io import atomic_open, atomic_write_text

if TYPE_CHECKING:
    from torch import nn

    from mdmest.fusion.data import MultimodalDataset
    from mdmest.fusion.training.trainer import Trainer

__all__ = [
    "restore_best",
    "resume_from_last",
    "save_trainer",
    "trainer_from_checkpoint",
    "write_trainer_metrics",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "check_resumable",
    "load_trainer_state",
    "load_weights",
    "read_checkpoint",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "trainer_state",
    "trainer_weights",
    "write_json",
]

CHECKPOINT_FORMAT = "mdmest-fusion-checkpoint"
CHECKPOINT_VERSION = 1
# What Trainer.state_dict writes (version 1) and what reading a checkpoint relies on.
_REQUIRED_KEYS = (
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
# Settings that may change when a run is resumed without a warning.
_RESUMABLE_CHANGES = ("epochs", "progress", "device", "patience")


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
    missing = [key for key in _REQUIRED_KEYS if key not in checkpoint]
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


def check_resumable(
    checkpoint: dict[str, Any], model_spec: dict[str, Any] | None, config: dict[str, Any]
) -> None:
    """Refuse to resume ``checkpoint`` with another model; warn when settings other than those a
    resumed run may change freely (epochs, patience, device, progress) differ from ``config`` (a
    :meth:`TrainConfig.to_dict`)."""
    if checkpoint["model_spec"] != model_spec:
        raise ValueError(
            f"cannot resume: last.pt was trained with model {checkpoint['model_spec']}, "
            f"this run builds {model_spec}"
        )
    saved = checkpoint["config"]
    changed = sorted(
        key for key in config if key not in _RESUMABLE_CHANGES and saved.get(key) != config[key]
    )
    if changed:
        warnings.warn(
            f"resuming with a changed configuration ({', '.join(changed)}); the new values "
            "apply from now on",
            stacklevel=3,
        )


def trainer_weights(trainer: Trainer) -> dict[str, Any]:
    """The weights of ``trainer``'s model and measure (the critic and its running statistics)."""
    measure = trainer.measure
    return {
        "model_state": trainer.model.state_dict(),
        "measure_state": measure.state_dict() if measure is not None else None,
    }


def load_weights(trainer: Trainer, weights: dict[str, Any]) -> None:
    """Load :func:`trainer_weights` (or a checkpoint) into ``trainer``'s model and measure."""
    trainer.model.load_state_dict(weights["model_state"])
    if trainer.measure is not None:
        trainer.measure.load_state_dict(weights["measure_state"])


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """What a checkpoint of ``trainer`` holds: weights, optimisers, progress, random state."""
    critic_optimizer, scheduler = trainer.critic_optimizer, trainer.scheduler
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "config": trainer.config.to_dict(),
        "model_class": type(trainer.model).__name__,
        "model_spec": trainer.model_spec,
        "metadata": trainer.metadata,
        "data_dims": dict(zip(MODALITIES, trainer.dataset.dims)),
        "representation_dims": list(trainer.model.representation_dims),
        **trainer_weights(trainer),
        "optimizer_state": trainer.optimizer.state_dict(),
        "critic_optimizer_state": critic_optimizer.state_dict() if critic_optimizer else None,
        "scheduler_state": scheduler.state_dict() if scheduler else None,
        "best_epoch": trainer.best_epoch,
        "best_value": trainer.best_value,
        "epochs_without_improvement": trainer.epochs_without_improvement,
        "history": trainer.history,
        "rng_state": rng_state(),
    }


def load_trainer_state(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Restore a :func:`trainer_state` into ``trainer`` (built with the same model and penalty)."""
    if (checkpoint["measure_state"] is None) != (trainer.measure is None):
        raise ValueError(
            "the checkpoint and this trainer disagree on the penalty: checkpoint "
            f"{checkpoint['config']['penalty']!r}, trainer {trainer.config.penalty!r}"
        )
    load_weights(trainer, checkpoint)
    trainer.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if trainer.critic_optimizer is not None and checkpoint["critic_optimizer_state"] is not None:
        trainer.critic_optimizer.load_state_dict(checkpoint["critic_optimizer_state"])
    if trainer.scheduler is not None and checkpoint["scheduler_state"] is not None:
        trainer.scheduler.load_state_dict(checkpoint["scheduler_state"])
    trainer.epoch = checkpoint["epoch"]
    trainer.global_step = checkpoint["global_step"]
    trainer.best_epoch = checkpoint["best_epoch"]
    trainer.best_value = checkpoint["best_value"]
    trainer.epochs_without_improvement = checkpoint["epochs_without_improvement"]
    trainer.history = list(checkpoint["history"])
    set_rng_state(checkpoint["rng_state"])


# -- what the Trainer writes and reads --------------------------------------------------------------
def trainer_from_checkpoint(
    cls: type[Trainer],
    path: str | os.PathLike,
    dataset: MultimodalDataset,
    *,
    model: nn.Module | None = None,
    measure: nn.Module | None = None,
    out_dir: str | os.PathLike | None = None,
    **config_overrides: Any,
) -> Trainer:
    """:meth:`Trainer.from_checkpoint`: the model from ``model_spec`` unless given, then the state."""
    from mdmest.fusion.models import build_model
    from mdmest.fusion.training.config import TrainConfig

    checkpoint = read_checkpoint(path)
    config = TrainConfig(**{**checkpoint["config"], **config_overrides})
    spec = checkpoint["model_spec"]
    if model is None:
        if spec is None:
            raise ValueError(
                f"checkpoint {str(path)!r} has no model_spec (it was trained on a custom "
                "model); pass model="
            )
        model = build_model(**spec)
    trainer = cls(
        model,
        dataset,
        config,
        measure=measure,
        out_dir=out_dir,
        model_spec=spec,
        metadata=checkpoint["metadata"],
    )
    trainer.load_state(checkpoint)
    return trainer


def resume_from_last(trainer: Trainer) -> None:
    """Load ``out_dir/last.pt`` into ``trainer`` if it exists, after checking it is this run's."""
    if trainer.out_dir is None:
        raise ValueError("resume=True needs an out_dir to find last.pt in")
    last = trainer.out_dir / "last.pt"
    if last.is_file():
        checkpoint = read_checkpoint(last, map_location=trainer.device)
        check_resumable(checkpoint, trainer.model_spec, trainer.config.to_dict())
        trainer.load_state(checkpoint)


def save_trainer(trainer: Trainer, name: str) -> None:
    """Write ``trainer.out_dir / name`` (best.pt or last.pt) from rank 0; the others wait."""
    from mdmest.fusion.training import distributed as ranks

    if trainer.out_dir is not None:
        if ranks.is_main():  # one writer; the others wait until the file is complete
            save_checkpoint(trainer.out_dir / name, trainer.state_dict())
        ranks.barrier()


def write_trainer_metrics(trainer: Trainer) -> None:
    """Write ``metrics.json`` (config, spec, best epoch, test metrics, history) from rank 0."""
    from mdmest.fusion.training import distributed as ranks

    if trainer.out_dir is None:
        return
    payload = {
        "config": trainer.config.to_dict(),
        "model_spec": trainer.model_spec,
        "metadata": trainer.metadata,
        "select_on": trainer.config.select_on,
        "best_epoch": trainer.best_epoch,
        "best_valid": trainer._best_valid(),
        "test": trainer.test_metrics,
        "epochs": trainer.history,
    }
    if trainer.world_size > 1:
        payload["world_size"] = trainer.world_size
    if ranks.is_main():
        write_json(trainer.out_dir / "metrics.json", payload)
    ranks.barrier()


def restore_best(trainer: Trainer) -> None:
    """Load the best epoch's weights: from ``best.pt`` when the run writes files, else from memory."""
    best = trainer._best_weights
    if trainer.out_dir is not None and (trainer.out_dir / "best.pt").is_file():
        best = read_checkpoint(trainer.out_dir / "best.pt", map_location=trainer.device)
    if best is not None:
        load_weights(trainer, best)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global generator and ``random``; call it before building the model so
    that its initialisation is reproducible too."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of torch's, numpy's global and ``random``'s generators, as tensors and plain
    containers (what ``weights_only`` loading accepts); :func:`set_rng_state` restores it.

    Examples
    --------
    >>> state = rng_state()
    >>> first = (torch.rand(1).item(), np.random.rand(), random.random())
    >>> set_rng_state(state)
    >>> (torch.rand(1).item(), np.random.rand(), random.random()) == first
    True
    """
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "random": _to_lists(random.getstate()),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators to a :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    random.setstate(_to_tuples(state["random"]))


def _to_lists(value: Any) -> Any:
    return [_to_lists(item) for item in value] if isinstance(value, tuple) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(item) for item in value) if isinstance(value, list) else value
