"""Hooks into the trainer's loop, named as in PyTorch Lightning, and the built-in callbacks.

[`Trainer.fit`][mdmest.fusion.training.Trainer.fit] calls, on every callback in order:

- ``on_train_start(trainer)`` once, after a resumed run's state is loaded;
- per epoch ``on_train_epoch_start(trainer)``, ``on_train_batch_end(trainer, losses)`` after each
  optimisation step, ``on_validation_end(trainer)`` once the epoch's record (with its validation
  metrics and bound) is in ``trainer.state.history`` and the best epoch is updated, then
  ``on_train_epoch_end(trainer)``;
- ``on_train_end(trainer)`` once the best weights are loaded and ``trainer.state.test_metrics`` set.

A callback stops training by setting ``trainer.state.should_stop = True`` (the epoch in progress
ends first). A callback whose ``state_dict()`` is not empty has it saved in the trainer's checkpoints
under its ``state_key`` and given back to ``load_state_dict`` when the run is resumed.

Built in: [`EarlyStopping`][mdmest.fusion.training.callbacks.EarlyStopping] and
[`ModelCheckpoint`][mdmest.fusion.training.callbacks.ModelCheckpoint] (the trainer adds them unless
given), [`CSVLogger`][mdmest.fusion.training.callbacks.CSVLogger] and
[`TensorBoardLogger`][mdmest.fusion.training.callbacks.TensorBoardLogger] (where ``tensorboard`` is
installed).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mdmest.fusion.training import distributed as ranks
from mdmest.fusion.training.checkpoint import read_checkpoint, save_checkpoint, write_json
from mdmest.io import atomic_write_text

#: What a hook is handed: the ``mdmest.fusion.training.Trainer`` running it (not imported here,
#: because the Trainer imports this module). Hooks read its public attributes.
TrainerLike = Any

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "ProgressBar",
    "TensorBoardLogger",
    "with_default_callbacks",
]


class Callback:
    """Base class of the trainer's callbacks: every hook does nothing until overridden.

    Examples
    --------
    Stop as soon as the validation bound falls below the previous epoch's:

    >>> class StopWhenTheBoundFalls(Callback):
    ...     def on_validation_end(self, trainer):
    ...         bounds = [epoch["bound_estimate"] for epoch in trainer.state.history]
    ...         if len(bounds) > 1 and bounds[-1] < bounds[-2]:
    ...             trainer.state.should_stop = True
    """

    def on_train_start(self, trainer: TrainerLike) -> None:
        """Training begins (after a resumed run's state is loaded)."""

    def on_train_epoch_start(self, trainer: TrainerLike) -> None:
        """An epoch begins; ``trainer.state.epoch`` epochs are done."""

    def on_train_batch_end(self, trainer: TrainerLike, losses: dict[str, float]) -> None:
        """An optimisation step is done; ``losses`` holds its ``train_loss``, ``task_loss`` and
        ``penalty``."""

    def on_validation_end(self, trainer: TrainerLike) -> None:
        """The epoch is validated: ``trainer.state.history[-1]`` is its record and the best epoch
        is up to date."""

    def on_train_epoch_end(self, trainer: TrainerLike) -> None:
        """The epoch is over (after ``on_validation_end``)."""

    def on_train_end(self, trainer: TrainerLike) -> None:
        """Training is over: the best epoch's weights are loaded and ``trainer.state.test_metrics``
        is set (``None`` without a test split)."""

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint (its class name)."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` when a run is resumed."""


class EarlyStopping(Callback):
    """Stop when the validation metric the trainer selects on (``config.select_on``) has not
    improved for ``patience`` epochs.

    Parameters
    ----------
    patience : int, optional
        Epochs without improvement before stopping; default ``trainer.config.patience``.
    """

    def __init__(self, patience: int | None = None) -> None:
        if patience is not None and (isinstance(patience, bool) or int(patience) != patience):
            raise TypeError(f"patience must be an int or None, got {patience!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.patience = patience

    def _check(self, trainer: TrainerLike) -> None:
        patience = self.patience if self.patience is not None else trainer.config.patience
        if trainer.state.epochs_without_improvement >= patience:
            trainer.state.should_stop = True

    def on_train_start(self, trainer: TrainerLike) -> None:
        self._check(trainer)  # a resumed run that had stopped stays stopped

    def on_validation_end(self, trainer: TrainerLike) -> None:
        self._check(trainer)


class ModelCheckpoint(Callback):
    """Write ``best.pt`` (when the validation metric improved), ``last.pt`` and ``metrics.json``
    into ``folder`` after every epoch, and ``metrics.json`` with the test metrics at the end.

    Each file is written atomically (a crash leaves the previous one intact), by rank 0 alone under
    a process group. ``Trainer(out_dir=...)`` adds this callback; ``fit(resume=True)`` continues
    from its ``last.pt`` and the end of ``fit`` loads the weights of its ``best.pt``.

    Parameters
    ----------
    folder : path
        Created on the first write.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.folder / "last.pt"

    def read_last(self, device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """``last.pt`` (loaded onto ``device``), or ``None`` before the first epoch is saved."""
        return read_checkpoint(self.last_path, device) if self.last_path.is_file() else None

    def read_best(self, device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """``best.pt`` (loaded onto ``device``), or ``None`` before the first epoch is saved."""
        return read_checkpoint(self.best_path, device) if self.best_path.is_file() else None

    def on_train_epoch_end(self, trainer: TrainerLike) -> None:
        if trainer.state.improved:
            self.save(trainer, "best.pt")
        self.save(trainer, "last.pt")
        self.write_metrics(trainer)

    def on_train_end(self, trainer: TrainerLike) -> None:
        self.write_metrics(trainer)

    def save(self, trainer: TrainerLike, name: str) -> None:
        """Write ``trainer.state_dict()`` to ``folder / name`` from rank 0; the others wait."""
        if ranks.is_main():  # one writer; the others wait until the file is complete
            save_checkpoint(self.folder / name, trainer.state_dict())
        ranks.barrier()

    def write_metrics(self, trainer: TrainerLike) -> None:
        """Write ``metrics.json``: config, spec, best epoch, test metrics and history."""
        state = trainer.state
        payload: dict[str, Any] = {
            "config": trainer.config.to_dict(),
            "model_spec": trainer.model_spec,
            "metadata": trainer.metadata,
            "select_on": trainer.config.select_on,
            "best_epoch": state.best_epoch,
            "best_valid": state.best_valid,
            "test": state.test_metrics,
            "epochs": state.history,
        }
        if trainer.world_size > 1:
            payload["world_size"] = trainer.world_size
        if ranks.is_main():
            write_json(self.folder / "metrics.json", payload)
        ranks.barrier()


class ProgressBar(Callback):
    """tqdm bars of the epochs (with the validation metric and the best epoch) and of the steps
    of the current epoch (with the loss), on rank 0; the trainer adds it when ``config.progress``.
    """

    def __init__(self) -> None:
        self.epochs_bar: tqdm | None = None
        self.steps_bar: tqdm | None = None

    def on_train_start(self, trainer: TrainerLike) -> None:
        self.epochs_bar = tqdm(
            total=trainer.config.epochs,
            initial=trainer.state.epoch,
            desc="training",
            unit="epoch",
            disable=not ranks.is_main(),
        )

    def on_train_epoch_start(self, trainer: TrainerLike) -> None:
        self.steps_bar = tqdm(
            total=trainer.steps_per_epoch,
            desc=f"epoch {trainer.state.epoch + 1}/{trainer.config.epochs}",
            disable=not ranks.is_main(),
            leave=False,
        )

    def on_train_batch_end(self, trainer: TrainerLike, losses: dict[str, float]) -> None:
        self.steps_bar.update()
        self.steps_bar.set_postfix(loss=f"{losses['train_loss']:.4f}")

    def on_train_epoch_end(self, trainer: TrainerLike) -> None:
        self.steps_bar.close()
        select_on, state = trainer.config.select_on, trainer.state
        value = state.history[-1]["valid"][select_on]
        self.epochs_bar.update()
        self.epochs_bar.set_postfix(
            {f"valid_{select_on}": f"{value:.4f}", "best_epoch": state.best_epoch}
        )

    def on_train_end(self, trainer: TrainerLike) -> None:
        self.epochs_bar.close()


def _flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """An epoch record with its nested ``valid`` metrics as ``valid_<metric>`` entries.

    Examples
    --------
    >>> _flat_record({"epoch": 1, "train_loss": 0.5, "valid": {"mae": 0.9}})
    {'epoch': 1, 'train_loss': 0.5, 'valid_mae': 0.9}
    """
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


class CSVLogger(Callback):
    """One row per epoch in a CSV file: the epoch's record with ``valid_<metric>`` columns.

    The file is rewritten atomically from ``trainer.state.history`` after every epoch, so it always
    matches the run's state: a resumed run neither loses nor repeats rows.

    Parameters
    ----------
    path : path
        The CSV file (its folder is created).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: TrainerLike) -> None:
        if not ranks.is_main():
            return
        rows = [_flat_record(record) for record in trainer.state.history]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, text.getvalue())


class TensorBoardLogger(Callback):
    """Scalars per epoch for TensorBoard: ``train/<loss>``, ``valid/<metric>``,
    ``valid/bound_estimate`` at step = epoch, and ``test/<metric>`` at the end.

    Needs the ``tensorboard`` package (``pip install tensorboard``, or ``mdmest[integrations]``);
    without it, building the logger raises an ``ImportError`` that says so. A resumed run drops
    the events of epochs after its ``last.pt`` (``purge_step``) and writes them again.

    Parameters
    ----------
    log_dir : path
        The folder of the event files (``tensorboard --logdir`` it).
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: pip install tensorboard "
                f"(or mdmest[integrations]); importing torch.utils.tensorboard failed: {error}"
            ) from error
        self.log_dir = Path(log_dir)
        self._writer_class = SummaryWriter
        self.writer = None

    def on_train_start(self, trainer: TrainerLike) -> None:
        if ranks.is_main():
            purge = trainer.state.epoch + 1 if trainer.state.epoch else None
            self.writer = self._writer_class(str(self.log_dir), purge_step=purge)

    def _scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        for name, value in values.items():
            if isinstance(value, (int, float)) and not math.isnan(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def on_train_epoch_end(self, trainer: TrainerLike) -> None:
        if self.writer is None:
            return
        record = trainer.state.history[-1]
        losses = {k: record[k] for k in ("train_loss", "task_loss", "penalty") if k in record}
        self._scalars("train", losses, record["epoch"])
        valid = {**record["valid"], "bound_estimate": record.get("bound_estimate", math.nan)}
        self._scalars("valid", valid, record["epoch"])
        self.writer.flush()

    def on_train_end(self, trainer: TrainerLike) -> None:
        if self.writer is None:
            return
        if trainer.state.test_metrics is not None:
            self._scalars("test", trainer.state.test_metrics, trainer.state.epoch)
        self.writer.close()
        self.writer = None


def with_default_callbacks(
    callbacks: Iterable[Callback], out_dir: str | os.PathLike | None, *, progress: bool = False
) -> list[Callback]:
    """What the trainer runs: ``callbacks``, then a :class:`ProgressBar` if ``progress`` and an
    :class:`EarlyStopping` unless of their kind are among them, then the :class:`ModelCheckpoint`
    of ``out_dir`` unless one writes there."""
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(
                "callbacks must be instances of mdmest.fusion.training.callbacks.Callback; got "
                f"{type(callback).__name__}"
            )
    if progress and not any(isinstance(callback, ProgressBar) for callback in callbacks):
        callbacks.append(ProgressBar())
    if not any(isinstance(callback, EarlyStopping) for callback in callbacks):
        callbacks.append(EarlyStopping())
    checkpoints = [callback for callback in callbacks if isinstance(callback, ModelCheckpoint)]
    if out_dir is not None:
        if checkpoints and checkpoints[0].folder != Path(out_dir):
            raise ValueError(
                f"out_dir {str(out_dir)!r} and the ModelCheckpoint's folder "
                f"{str(checkpoints[0].folder)!r} differ; give one of them"
            )
        if not checkpoints:
            callbacks.append(ModelCheckpoint(out_dir))
    return callbacks
