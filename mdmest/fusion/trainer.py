"""Train and evaluate fusion models with a dependency penalty (paper Eq. 5).

The objective is ``L = L_task + weight * measure(z_text, z_audio, z_video)``, where
``measure(...)`` is minus the measure's lower bound (plus its own penalties, e.g. the gradient
penalty), so minimising ``L`` maximises the dependency among the modality representations. The
critic inside the measure has its own optimiser and minimises the same ``measure(...)``, which
tightens the bound: the weighted term is ``measure.loss(..., weight=weight)``, whose gradient is
weighted for the encoders only, so the critic's step does not depend on the weight. Model
selection and early stopping use the validation split only.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mdmest._io import atomic_open, atomic_write_text
from mdmest.fusion.base import MODALITIES, FusionModel
from mdmest.fusion.data import MultimodalDataset, make_loader
from mdmest.fusion.models import build_model, default_training, model_names

__all__ = [
    "PENALTIES",
    "TASK_LOSSES",
    "Predictions",
    "TrainConfig",
    "Trainer",
    "build_model",
    "default_training",
    "drop_modalities",
    "model_names",
    "drop_ratios",
    "read_checkpoint",
    "seed_everything",
    "train",
    "write_json",
    "write_scores_csv",
]

TASK_LOSSES: dict[str, Callable[[], nn.Module]] = {"l1": nn.L1Loss, "mse": nn.MSELoss}
PENALTIES = ("none", "dv", "f", "wasserstein")
CHECKPOINT_VERSION = 1
# Validation metrics where lower is better; every other metric of regression_metrics is maximised.
_LOWER_IS_BETTER = frozenset({"mae"})
_SELECTABLE = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training split.
    batch_size : int
        Segments per step.
    lr : float
        Learning rate of the fusion model (Adam; AdamW with warm-up for models that define
        ``param_groups``, i.e. MAG-BERT / MAG-XLNet).
    weight_decay : float
        Weight decay of the fusion model's optimiser.
    task_loss : {"l1", "mse"}
        Regression loss on the sentiment score.
    penalty : {"none", "dv", "f", "wasserstein"}
        Dependency measure (built with :func:`mdmest.make_measure`); ``"none"`` trains without
        critic.
    penalty_weight : float
        The weight λ ≥ 0 in ``L_task + λ · measure(z_text, z_audio, z_video)``.
    measure_kwargs : dict
        Keyword arguments of :func:`mdmest.make_measure`, e.g. ``{"divergence": "js"}`` or, for the
        Wasserstein measure, its per-view normalisation option.
    critic_lr : float
        Learning rate of the critic's Adam optimiser.
    patience : int
        Stop after this many epochs without improvement of ``select_on`` on the validation split.
    select_on : str
        Validation metric that picks the best epoch ("mae" is minimised, the others maximised).
    max_steps_per_epoch : int or None
        Cap on the training steps per epoch (quick runs); ``None`` uses the whole split.
    warmup_fraction : float
        Fraction of all steps with a linear learning-rate warm-up (models with ``param_groups``
        only).
    grad_clip : float or None
        Clip the fusion model's gradient norm to this value; ``None`` does not clip.
    seed : int
        Seeds torch, numpy, random and the loaders' shuffling (epoch ``e`` shuffles with
        ``seed + e``).
    progress : bool
        Show tqdm progress bars.
    device : str
        Torch device of the model, the critic and the batches.
    """

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    task_loss: str = "l1"
    penalty: str = "none"
    penalty_weight: float = 0.1
    measure_kwargs: dict[str, Any] = field(default_factory=dict)
    critic_lr: float = 1e-4
    patience: int = 8
    select_on: str = "mae"
    max_steps_per_epoch: int | None = None
    warmup_fraction: float = 0.1
    grad_clip: float | None = None
    seed: int = 0
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "critic_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.penalty_weight < 0:
            raise ValueError(
                f"weight_decay and penalty_weight must be >= 0, got {self.weight_decay} and "
                f"{self.penalty_weight}"
            )
        if self.task_loss not in TASK_LOSSES:
            raise ValueError(
                f"task_loss must be one of {sorted(TASK_LOSSES)}, got {self.task_loss!r}"
            )
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {list(PENALTIES)}, got {self.penalty!r}")
        if self.select_on not in _SELECTABLE:
            raise ValueError(
                f"select_on must be one of {list(_SELECTABLE)}, got {self.select_on!r}"
            )
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"max_steps_per_epoch must be >= 1, got {self.max_steps_per_epoch}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-serialisable dict (as checkpoints store it)."""
        return dataclasses.asdict(self)


@dataclass
class Predictions:
    """A model's outputs on one split, one entry per segment, in loader order.

    ``scores`` holds the critic's value on each segment's joint row (paper Sec. 5.4: high means the
    modalities agree, low that they contradict); it is ``None`` for a model trained without penalty.
    ``representations`` are (z_text, z_audio, z_video), each of shape (N, d_k).
    """

    ids: list[str]
    labels: np.ndarray
    predictions: np.ndarray
    scores: np.ndarray | None
    representations: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def metrics(self) -> dict[str, float]:
        """All regression metrics of :func:`mdmest.fusion.metrics.regression_metrics`."""
        from mdmest.fusion.metrics import regression_metrics

        values = regression_metrics(self.predictions, self.labels)
        return {name: float(value) for name, value in values.items()}


def drop_modalities(batch: dict, drop: Iterable[str]) -> dict:
    """Return a copy of ``batch`` in which each dropped modality carries no information.

    Feature tensors (``"text"``, ``"audio"``, ``"video"``) are replaced by zeros of the same shape;
    the lengths are kept, so the model sees sequences of the usual length with empty content.
    ``batch["drop"]`` names the dropped modalities for models that read words instead of features
    (MAG-BERT and MAG-XLNet replace the dropped text's word pieces by the padding token).

    Parameters
    ----------
    batch : dict
        A batch from :func:`mdmest.fusion.data.collate`.
    drop : iterable of {"text", "audio", "video"}
        Modalities to remove.
    """
    drop = tuple(drop)
    unknown = sorted(set(drop) - set(MODALITIES))
    if unknown:
        raise ValueError(f"cannot drop {unknown}: modalities are {list(MODALITIES)}")
    dropped = {**batch, "drop": drop}
    for modality in drop:
        if modality in batch:
            dropped[modality] = torch.zeros_like(batch[modality])
        elif not (modality == "text" and batch.get("words") is not None):
            raise ValueError(f"cannot drop {modality!r}: the batch has no {modality!r} features")
    return dropped


def drop_ratios(corrupted: dict[str, float], full: dict[str, float]) -> dict[str, float]:
    """Fig. 2's robustness ratios ``Acc-2(corrupted) / Acc-2(all)``, for both Acc-2 variants."""
    return {
        f"{name}_ratio": corrupted[name] / full[name] if full[name] > 0 else float("nan")
        for name in ("acc2_has0", "acc2_non0")
    }


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :class:`Trainer` (tensors and plain containers only).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an mdmest training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != "mdmest-fusion-checkpoint":
        raise ValueError(f"{str(path)!r} is not an mdmest fusion checkpoint")
    if checkpoint["version"] > CHECKPOINT_VERSION:
        raise ValueError(
            f"{str(path)!r} has checkpoint version {checkpoint['version']}; this mdmest reads "
            f"up to {CHECKPOINT_VERSION}"
        )
    return checkpoint


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically (a crash leaves the old file intact)."""

    atomic_write_text(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")


def _rng_state() -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any]) -> None:
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


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global generator and ``random``; call it before building the model so
    that its initialisation is reproducible too."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def _linear_warmup(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear rise over ``warmup_steps``, then linear decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def _is_better(value: float, best: float | None, metric: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric in _LOWER_IS_BETTER else value > best


class Trainer:
    """Train a fusion model with ``task loss + weight × measure(z_text, z_audio, z_video)``.

    Parameters
    ----------
    model : FusionModel
        Returns a :class:`~mdmest.fusion.base.FusionOutput`; ``model.representation_dims`` are the
        measure's ``dims``.
    dataset : MultimodalDataset
        From :func:`mdmest.fusion.data.load_dataset`, with splits "train" and "valid" (and "test"
        for the final evaluation); text features present unless the model reads words (MAG).
    config : TrainConfig
        Hyperparameters.
    measure : mdmest.DependencyMeasure or mdmest.DecomposedTotalCorrelation, optional
        The penalty, stepped through its ``loss(*views, weight=config.penalty_weight)``; by default ``make_measure(config.penalty, model.representation_dims,
        **config.measure_kwargs)`` (none when ``config.penalty == "none"``). Pass one to use a
        custom critic, and pass the same kind again to :meth:`from_checkpoint`.
    out_dir : path, optional
        Folder for ``best.pt``, ``last.pt`` and ``metrics.json``; ``None`` writes nothing.
    model_spec : dict, optional
        Keyword arguments of :func:`build_model` that rebuild ``model``; stored in the
        checkpoints so that :meth:`from_checkpoint` needs nothing else.
    metadata : dict, optional
        JSON-serialisable notes kept in checkpoints and ``metrics.json`` (the command line stores
        how to reload the data there).

    Examples
    --------
    >>> from mdmest.fusion.data import load_dataset
    >>> dataset = load_dataset("synthetic:mosi", n_train=48, n_valid=16, n_test=16)
    >>> spec = dict(name="ef_lstm", text_dim=dataset.d_text, audio_dim=dataset.d_audio,
    ...             video_dim=dataset.d_video, hidden_dim=8, num_layers=1)
    >>> config = TrainConfig(epochs=2, penalty="dv", penalty_weight=0.1, progress=False)
    >>> trainer = Trainer(build_model(**spec), dataset, config, model_spec=spec)
    >>> summary = trainer.fit()
    >>> summary["epochs_run"], "acc2_non0" in trainer.evaluate("test", drop=("text",))
    (2, True)
    """

    def __init__(
        self,
        model: FusionModel,
        dataset: MultimodalDataset,
        config: TrainConfig,
        *,
        measure: nn.Module | None = None,
        out_dir: str | os.PathLike | None = None,
        model_spec: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if measure is not None and config.penalty == "none":
            raise ValueError("a measure was passed but config.penalty is 'none'; name its kind")
        if measure is not None and not callable(getattr(measure, "loss", None)):
            raise TypeError(
                "measure must be an mdmest measure, with a loss(*views, weight=...) method; got "
                f"{type(measure).__name__}"
            )
        self.config = config
        self.dataset = dataset
        self.model_spec = dict(model_spec) if model_spec is not None else None
        self.metadata = dict(metadata) if metadata is not None else {}
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = torch.device(config.device)
        seed_everything(config.seed)
        self.model = model.to(self.device)
        if measure is None and config.penalty != "none":
            from mdmest import make_measure

            kwargs = {"names": ("z_text", "z_audio", "z_video"), **config.measure_kwargs}
            measure = make_measure(config.penalty, tuple(model.representation_dims), **kwargs)
        self.measure = measure.to(self.device) if measure is not None else None
        self._task_loss = TASK_LOSSES[config.task_loss]()

        self._model_params = [p for p in self.model.parameters() if p.requires_grad]
        if not self._model_params:
            raise ValueError("the model has no trainable parameters")
        self.steps_per_epoch = self._count_steps()
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        if hasattr(self.model, "param_groups"):
            # MAG-BERT / MAG-XLNet recipe: AdamW, no decay on bias/LayerNorm, linear warm-up.
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                self.model.param_groups(config.weight_decay), lr=config.lr
            )
            total = config.epochs * self.steps_per_epoch
            warmup = max(1, round(config.warmup_fraction * total))
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, _linear_warmup(warmup, total)
            )
        else:
            self.optimizer = torch.optim.Adam(
                self._model_params, lr=config.lr, weight_decay=config.weight_decay
            )
        self._critic_params = (
            [p for p in self.measure.parameters() if p.requires_grad] if self.measure else []
        )
        self.critic_optimizer = (
            torch.optim.Adam(self._critic_params, lr=config.critic_lr)
            if self._critic_params
            else None
        )

        self.epoch = 0
        self.global_step = 0
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.epochs_without_improvement = 0
        self.history: list[dict[str, Any]] = []
        self.test_metrics: dict[str, float] | None = None
        # Without out_dir the best weights are kept in memory instead of in best.pt.
        self._best_weights: dict[str, Any] | None = None

    # ------------------------------------------------------------------ construction from files
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        dataset: MultimodalDataset,
        *,
        model: FusionModel | None = None,
        measure: nn.Module | None = None,
        out_dir: str | os.PathLike | None = None,
        **config_overrides: Any,
    ) -> Trainer:
        """Rebuild a trainer (model, critic, optimisers, progress) from a checkpoint alone.

        Parameters
        ----------
        path : path
            A ``best.pt`` or ``last.pt`` written by :meth:`fit`.
        dataset : MultimodalDataset
            Data to evaluate on or to continue training on.
        model, measure : optional
            Needed only when the run used a model without ``model_spec`` or a custom measure.
        out_dir : path, optional
            Where further training writes; ``None`` writes nothing.
        **config_overrides
            Fields of :class:`TrainConfig` to change, e.g. ``progress=False`` or ``device="cuda"``.
        """
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

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue or evaluate the run (what ``best.pt``/``last.pt`` hold)."""
        return {
            "format": "mdmest-fusion-checkpoint",
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "config": self.config.to_dict(),
            "model_class": type(self.model).__name__,
            "model_spec": self.model_spec,
            "metadata": self.metadata,
            "data_dims": dict(zip(MODALITIES, self.dataset.dims)),
            "representation_dims": list(self.model.representation_dims),
            "model_state": self.model.state_dict(),
            "measure_state": self.measure.state_dict() if self.measure is not None else None,
            "optimizer_state": self.optimizer.state_dict(),
            "critic_optimizer_state": (
                self.critic_optimizer.state_dict() if self.critic_optimizer else None
            ),
            "scheduler_state": self.scheduler.state_dict() if self.scheduler else None,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history,
            "rng_state": _rng_state(),
        }

    def load_state(self, checkpoint: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: model, measure (and its EMA), optimisers, progress."""
        if (checkpoint["measure_state"] is None) != (self.measure is None):
            raise ValueError(
                "the checkpoint and this trainer disagree on the penalty: checkpoint "
                f"{checkpoint['config']['penalty']!r}, trainer {self.config.penalty!r}"
            )
        self.model.load_state_dict(checkpoint["model_state"])
        if self.measure is not None:
            self.measure.load_state_dict(checkpoint["measure_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.critic_optimizer is not None and checkpoint["critic_optimizer_state"] is not None:
            self.critic_optimizer.load_state_dict(checkpoint["critic_optimizer_state"])
        if self.scheduler is not None and checkpoint["scheduler_state"] is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        self.epoch = checkpoint["epoch"]
        self.global_step = checkpoint["global_step"]
        self.best_epoch = checkpoint["best_epoch"]
        self.best_value = checkpoint["best_value"]
        self.epochs_without_improvement = checkpoint["epochs_without_improvement"]
        self.history = list(checkpoint["history"])
        _set_rng_state(checkpoint["rng_state"])

    def _save(self, name: str) -> None:
        if self.out_dir is not None:
            state = self.state_dict()
            with atomic_open(self.out_dir / name) as stream:
                torch.save(state, stream)

    def _write_metrics(self) -> None:
        if self.out_dir is None:
            return
        best = next((e for e in self.history if e["epoch"] == self.best_epoch), None)
        payload = {
            "config": self.config.to_dict(),
            "model_spec": self.model_spec,
            "metadata": self.metadata,
            "select_on": self.config.select_on,
            "best_epoch": self.best_epoch,
            "best_valid": best["valid"] if best else None,
            "test": self.test_metrics,
            "epochs": self.history,
        }
        write_json(self.out_dir / "metrics.json", payload)

    # ------------------------------------------------------------------ training
    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Train until ``config.epochs`` or early stopping, then keep the best model.

        Each epoch appends train loss, task loss, penalty value, the bound estimate and the
        validation metrics to ``history`` and to ``out_dir/metrics.json``, and writes ``last.pt``
        (and ``best.pt`` when the validation metric improved), each atomically. At the end the best
        model's weights are loaded and, if the dataset has a "test" split, its test metrics are
        recorded.

        Parameters
        ----------
        resume : bool
            Continue from ``out_dir/last.pt`` if it exists (model, critic, optimisers, random
            state).

        Returns
        -------
        dict
            ``best_epoch``, ``best_valid`` (validation metrics of that epoch), ``test`` (or
            ``None``), ``epochs_run`` and ``stopped_early``.
        """
        if resume:
            if self.out_dir is None:
                raise ValueError("resume=True needs an out_dir to find last.pt in")
            last = self.out_dir / "last.pt"
            if last.is_file():
                self._load_for_resume(read_checkpoint(last, map_location=self.device))
        stopped_early = self.epochs_without_improvement >= self.config.patience
        epochs_bar = tqdm(
            total=self.config.epochs,
            initial=self.epoch,
            desc="training",
            unit="epoch",
            disable=not self.config.progress,
        )
        while self.epoch < self.config.epochs and not stopped_early:
            started = time.perf_counter()
            train_stats = self._train_epoch(self.epoch + 1)
            valid = self.predict("valid")
            valid_metrics = valid.metrics()
            self.epoch += 1
            self.history.append(
                {
                    "epoch": self.epoch,
                    **train_stats,
                    "bound_estimate": self.bound_estimate(valid),
                    "valid": valid_metrics,
                    "seconds": time.perf_counter() - started,
                }
            )
            value = valid_metrics[self.config.select_on]
            if _is_better(value, self.best_value, self.config.select_on):
                self.best_epoch, self.best_value = self.epoch, value
                self.epochs_without_improvement = 0
                if self.out_dir is None:
                    self._best_weights = copy.deepcopy(self._weights())
                self._save("best.pt")
            else:
                self.epochs_without_improvement += 1
            stopped_early = self.epochs_without_improvement >= self.config.patience
            self._save("last.pt")
            self._write_metrics()
            epochs_bar.update()
            epochs_bar.set_postfix(
                {f"valid_{self.config.select_on}": f"{value:.4f}", "best_epoch": self.best_epoch}
            )
        epochs_bar.close()
        self._restore_best()
        if "test" in self.dataset:
            self.test_metrics = self.evaluate("test")
            self._write_metrics()
        best = next((e for e in self.history if e["epoch"] == self.best_epoch), None)
        return {
            "best_epoch": self.best_epoch,
            "best_valid": best["valid"] if best else None,
            "test": self.test_metrics,
            "epochs_run": self.epoch,
            "stopped_early": stopped_early,
        }

    def _load_for_resume(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint["model_spec"] != self.model_spec:
            raise ValueError(
                f"cannot resume: last.pt was trained with model {checkpoint['model_spec']}, "
                f"this run builds {self.model_spec}"
            )
        saved = dict(checkpoint["config"])
        current = self.config.to_dict()
        changed = sorted(
            key
            for key in current
            if key not in ("epochs", "progress", "device", "patience")
            and saved.get(key) != current[key]
        )
        if changed:
            warnings.warn(
                f"resuming with a changed configuration ({', '.join(changed)}); the new values "
                "apply from now on",
                stacklevel=3,
            )
        self.load_state(checkpoint)

    def _weights(self) -> dict[str, Any]:
        return {
            "model_state": self.model.state_dict(),
            "measure_state": self.measure.state_dict() if self.measure is not None else None,
        }

    def _restore_best(self) -> None:
        best = self._best_weights
        if self.out_dir is not None and (self.out_dir / "best.pt").is_file():
            best = read_checkpoint(self.out_dir / "best.pt", map_location=self.device)
        if best is not None:
            self.model.load_state_dict(best["model_state"])
            if self.measure is not None:
                self.measure.load_state_dict(best["measure_state"])

    def _count_steps(self) -> int:
        batches = math.ceil(len(self.dataset["train"]) / self.config.batch_size)
        if self.config.max_steps_per_epoch is not None:
            batches = min(batches, self.config.max_steps_per_epoch)
        return batches

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        if self.measure is not None:
            self.measure.train()
        loader = make_loader(
            self.dataset["train"],
            self.config.batch_size,
            shuffle=True,
            seed=self.config.seed + epoch,
        )
        totals = {"train_loss": 0.0, "task_loss": 0.0, "penalty": 0.0}
        steps = 0
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch}/{self.config.epochs}",
            disable=not self.config.progress,
            leave=False,
        )
        for batch in loader:
            if steps == self.steps_per_epoch:
                break
            losses = self.train_step(batch)
            for key, value in losses.items():
                totals[key] += value
            steps += 1
            bar.update()
            bar.set_postfix(loss=f"{losses['train_loss']:.4f}")
        bar.close()
        if steps == 0:
            raise ValueError("the training split yielded no batch")
        stats = {key: value / steps for key, value in totals.items()}
        if self.measure is None:
            stats["penalty"] = float("nan")
        return stats

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimisation step of the model and, with a penalty, of the critic.

        Returns the step's ``train_loss`` (task + weight × penalty), ``task_loss`` and ``penalty``
        (the value of ``measure(...)``, i.e. minus the bound plus the measure's own penalties).
        """
        batch = _to_device(batch, self.device)
        output = self.model(batch)
        task_loss = self._task_loss(output.prediction, batch["label"])
        loss = task_loss
        penalty_value = 0.0
        if self.measure is not None:
            # Value task + weight·measure(...); the encoders get weight × the measure's gradient,
            # the critic the measure's own gradient (it tightens the bound whatever the weight,
            # also 0), so one backward pass serves both optimisers.
            loss = task_loss + self.measure.loss(
                *output.representations, weight=self.config.penalty_weight
            )
            penalty_value = self.measure.last_loss.item()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss at step {self.global_step + 1} (task {task_loss.item()}, penalty "
                f"{penalty_value}); lower the learning rate or the penalty weight"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.critic_optimizer is not None:
            self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self._model_params + self._critic_params)
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self._model_params, self.config.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.critic_optimizer is not None:
            self.critic_optimizer.step()
        self.global_step += 1
        return {"train_loss": loss.item(), "task_loss": task_loss.item(), "penalty": penalty_value}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, split: str, drop: Sequence[str] = ()) -> Predictions:
        """Predictions, labels and critic scores on every segment of ``split``.

        Parameters
        ----------
        split : str
            "train", "valid" or "test".
        drop : sequence of {"text", "audio", "video"}
            Modalities removed at inference (see :func:`drop_modalities`).
        """
        self.model.eval()
        ids: list[str] = []
        labels, predictions = [], []
        representations: list[list[torch.Tensor]] = [[], [], []]
        loader = make_loader(self.dataset[split], self.config.batch_size, shuffle=False)
        for batch in loader:
            batch = _to_device(drop_modalities(batch, drop) if drop else batch, self.device)
            output = self.model(batch)
            ids.extend(str(segment) for segment in batch["id"])
            labels.append(batch["label"].cpu())
            predictions.append(output.prediction.cpu())
            for store, z in zip(representations, output.representations):
                store.append(z)
        if not ids:
            raise ValueError(f"split {split!r} is empty")
        views = (
            torch.cat(representations[0]),
            torch.cat(representations[1]),
            torch.cat(representations[2]),
        )
        # One call on the whole split: a per-view normalisation then sees every segment.
        scores = self.measure.scores(*views).cpu().numpy() if self.measure is not None else None
        return Predictions(
            ids=ids,
            labels=torch.cat(labels).numpy(),
            predictions=torch.cat(predictions).numpy(),
            scores=scores,
            representations=views,
        )

    def evaluate(self, split: str, drop: Sequence[str] = ()) -> dict[str, float]:
        """All regression metrics on ``split``, optionally with modalities dropped."""
        return self.predict(split, drop).metrics()

    def bound_estimate(self, predictions: Predictions) -> float:
        """The measure's bound on the representations of ``predictions`` (NaN without a measure)."""
        if self.measure is None:
            return float("nan")
        return float(self.measure.estimate(*predictions.representations))


def write_scores_csv(predictions: Predictions, path: str | os.PathLike) -> None:
    """Write ``id, label, prediction, critic_score`` per segment, highest critic score first.

    The ranking is paper Sec. 5.4's explanation: the top rows are segments whose modalities the
    critic finds consistent, the bottom rows segments whose modalities contradict each other.
    """
    if predictions.scores is None:
        raise ValueError("no critic scores: the model was trained without a dependency penalty")
    order = np.argsort(-predictions.scores, kind="stable")

    stream = io.StringIO(newline="")
    writer = csv.writer(stream)
    writer.writerow(["id", "label", "prediction", "critic_score"])
    for index in order:
        writer.writerow(
            [
                predictions.ids[index],
                f"{predictions.labels[index]:.4f}",
                f"{predictions.predictions[index]:.4f}",
                f"{predictions.scores[index]:.6g}",
            ]
        )
    atomic_write_text(path, stream.getvalue())


def train(
    model: FusionModel,
    dataset: MultimodalDataset,
    config: TrainConfig,
    *,
    resume: bool = False,
    **trainer_options: Any,
) -> Trainer:
    """Build a :class:`Trainer`, run :meth:`Trainer.fit`, return the trainer (best model loaded).

    ``trainer_options`` are the keyword arguments of :class:`Trainer` (``measure``, ``out_dir``,
    ``model_spec``, ``metadata``).
    """
    trainer = Trainer(model, dataset, config, **trainer_options)
    trainer.fit(resume=resume)
    return trainer


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
