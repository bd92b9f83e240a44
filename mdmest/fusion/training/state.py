"""What a training run has done so far (:class:`TrainerState`) and the random state it keeps.

The trainer's checkpoint is the ``state_dict`` of its parts: the model, the measure, the
optimisers and the schedule serialise themselves (torch's ``state_dict``), the progress of the run
is a :class:`TrainerState`, and the random generators are :func:`rng_state`.
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mdmest.fusion.training.evaluation import is_better

__all__ = ["TrainerState", "check_resumable", "rng_state", "seed_everything", "set_rng_state"]

# Settings that may change when a run is resumed without a warning.
_RESUMABLE_CHANGES = ("epochs", "progress", "device", "patience")


@dataclass
class TrainerState:
    """The progress of a run: epochs and steps done, the best epoch so far, the history.

    Every field but ``should_stop`` is saved in checkpoints (:meth:`state_dict`).

    Attributes
    ----------
    epoch : int
        Epochs completed.
    global_step : int
        Optimisation steps taken.
    best_epoch, best_value : int or None, float or None
        The epoch with the best validation ``select_on`` metric, and that value.
    epochs_without_improvement : int
        Epochs since ``best_epoch`` (what early stopping counts).
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``task_loss``, ``penalty``,
        ``bound_estimate``, ``valid`` (all metrics) and ``seconds``.
    test_metrics : dict or None
        The best model's metrics on the test split, set at the end of a run.
    should_stop : bool
        Set by a callback (e.g. [`EarlyStopping`][mdmest.fusion.training.callbacks.EarlyStopping])
        to end training after the current epoch; not saved, callbacks decide anew on resume.

    Examples
    --------
    >>> state = TrainerState()
    >>> state.record({"epoch": 1, "valid": {"mae": 0.9}}, select_on="mae")
    True
    >>> state.record({"epoch": 2, "valid": {"mae": 1.1}}, select_on="mae")
    False
    >>> state.best_epoch, state.epochs_without_improvement, state.best_valid
    (1, 1, {'mae': 0.9})
    >>> TrainerState.from_state_dict(state.state_dict()) == state
    True
    """

    epoch: int = 0
    global_step: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, float] | None = None
    should_stop: bool = field(default=False, compare=False)

    def record(self, epoch_record: dict[str, Any], select_on: str) -> bool:
        """Append a finished epoch's record (with its ``valid`` metrics) and update the best epoch
        by validation ``select_on``; returns whether this epoch is the new best."""
        self.epoch = epoch_record["epoch"]
        self.history.append(epoch_record)
        value = epoch_record["valid"][select_on]
        if is_better(value, self.best_value, select_on):
            self.best_epoch, self.best_value = self.epoch, value
            self.epochs_without_improvement = 0
            return True
        self.epochs_without_improvement += 1
        return False

    @property
    def improved(self) -> bool:
        """Whether the last completed epoch is the best so far."""
        return self.best_epoch is not None and self.best_epoch == self.epoch

    @property
    def best_valid(self) -> dict[str, float] | None:
        """The validation metrics of the best epoch (``None`` before the first epoch)."""
        best = next((e for e in self.history if e["epoch"] == self.best_epoch), None)
        return best["valid"] if best else None

    def state_dict(self) -> dict[str, Any]:
        """The saved fields, as plain values (the keys a checkpoint holds them under)."""
        saved = dataclasses.asdict(self)
        del saved["should_stop"]
        return saved

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fields of a :meth:`state_dict` (``test_metrics`` may be absent: ``None``)."""
        self.epoch = state["epoch"]
        self.global_step = state["global_step"]
        self.best_epoch = state["best_epoch"]
        self.best_value = state["best_value"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        self.history = list(state["history"])
        self.test_metrics = state.get("test_metrics")
        self.should_stop = False

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrainerState:
        """A new state holding :meth:`state_dict` ``state``."""
        restored = cls()
        restored.load_state_dict(state)
        return restored


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
            stacklevel=4,
        )


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
