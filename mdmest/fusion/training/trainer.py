"""Train and evaluate fusion models with a dependency penalty (paper Eq. 5).

The objective is ``L = L_task + weight * measure(z_text, z_audio, z_video)``, where
``measure(...)`` is minus the measure's lower bound (plus its own penalties, e.g. the gradient
penalty), so minimising ``L`` maximises the dependency among the modality representations. The
critic inside the measure has its own optimiser and minimises the same ``measure(...)``, which
tightens the bound: the weighted term is ``measure.loss(..., weight=weight)``, whose gradient is
weighted for the encoders only, so the critic's step does not depend on the weight. Model
selection and early stopping use the validation split only.

Under a process group of W > 1 ranks (``torchrun``) it trains data-parallel: each rank takes its
part of every global batch, the model is in DDP, the measure draws product rows from the global
batch and its critic's gradients are averaged, every rank evaluates on the whole split and rank 0
writes the files (:mod:`~mdmest.fusion.training.distributed`, docs/distributed.md).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from mdmest.fusion.base import FusionModel
from mdmest.fusion.data import MultimodalDataset
from mdmest.fusion.training import distributed as ranks
from mdmest.fusion.training._optim import make_optimizer, optimizer_step
from mdmest.fusion.training.checkpoint import (
    load_trainer_state,
    restore_best,
    resume_from_last,
    save_trainer,
    seed_everything,
    trainer_from_checkpoint,
    trainer_state,
    trainer_weights,
    write_trainer_metrics,
)
from mdmest.fusion.training.config import TASK_LOSSES, TrainConfig, check_device
from mdmest.fusion.training.evaluation import (
    Predictions,
    bound_estimate,
    is_better,
    predict,
    to_device,
)

__all__ = ["Trainer", "train"]


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
        Hyperparameters; ``config.device`` must exist on this machine.
    measure : mdmest.DependencyMeasure or mdmest.DecomposedTotalCorrelation, optional
        The penalty, stepped through its ``loss(*views, weight=config.penalty_weight)``; by default
        ``make_measure(config.penalty, model.representation_dims, **kwargs)`` with the kwargs of
        :meth:`TrainConfig.effective_measure_kwargs` (a Wasserstein penalty standardises the views
        of models with unbounded representations), none when ``config.penalty == "none"``. The
        trainer's ``config`` records the kwargs used. Pass a measure to use a custom critic, and
        pass the same kind again to :meth:`from_checkpoint`.
    out_dir : path, optional
        Folder for ``best.pt``, ``last.pt`` and ``metrics.json``; ``None`` writes nothing.
    model_spec : dict, optional
        Keyword arguments of :func:`~mdmest.fusion.models.build_model` that rebuild ``model``;
        stored in the checkpoints so that :meth:`from_checkpoint` needs nothing else.
    metadata : dict, optional
        JSON-serialisable notes kept in checkpoints and ``metrics.json`` (the command line stores
        how to reload the data there).

    Examples
    --------
    >>> from mdmest.fusion.data import load_dataset
    >>> from mdmest.fusion.models import build_model
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
        self.device = check_device(config.device)
        #: Ranks of the process group training together (1: one process, the usual path).
        self.world_size = ranks.world_size()
        self.device = ranks.train_device(self.device)
        if measure is None and config.penalty != "none":
            # The trainer's copy of the config records the kwargs the measure is built with.
            config = dataclasses.replace(
                config, measure_kwargs=config.effective_measure_kwargs(model)
            )
        self.config = config
        self.dataset = dataset
        self.model_spec = dict(model_spec) if model_spec is not None else None
        self.metadata = dict(metadata) if metadata is not None else {}
        self.out_dir = Path(out_dir) if out_dir is not None else None
        seed_everything(config.seed)
        self.model = model.to(self.device)
        if measure is None and config.penalty != "none":
            from mdmest import make_measure

            kwargs = {"names": ("z_text", "z_audio", "z_video"), **config.measure_kwargs}
            if self.world_size > 1:  # product rows from the global batch (mdmest.distributed)
                kwargs["distributed"] = True
            measure = make_measure(config.penalty, tuple(model.representation_dims), **kwargs)
        self.measure = measure.to(self.device) if measure is not None else None
        self._task_loss = TASK_LOSSES[config.task_loss]()

        self._model_params = [p for p in self.model.parameters() if p.requires_grad]
        if not self._model_params:
            raise ValueError("the model has no trainable parameters")
        self.steps_per_epoch = self._count_steps()
        self.optimizer, self.scheduler = make_optimizer(
            self.model, self._model_params, config, config.epochs * self.steps_per_epoch
        )
        self._critic_params = (
            [p for p in self.measure.parameters() if p.requires_grad] if self.measure else []
        )
        self.critic_optimizer = (
            torch.optim.Adam(self._critic_params, lr=config.critic_lr)
            if self._critic_params
            else None
        )
        # Under a process group: the model in DDP, the critic's gradients all-reduced after backward.
        self._ddp: nn.Module | None = ranks.wrap_model(
            self.model, self._model_params, self.measure, dataset["train"], self.device
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
        return trainer_from_checkpoint(
            cls, path, dataset, model=model, measure=measure, out_dir=out_dir, **config_overrides
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue or evaluate the run (what ``best.pt``/``last.pt`` hold)."""
        return trainer_state(self)

    def load_state(self, checkpoint: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: model, measure (and its EMA), optimisers, progress."""
        load_trainer_state(self, checkpoint)

    def _save(self, name: str) -> None:
        save_trainer(self, name)

    def _write_metrics(self) -> None:
        write_trainer_metrics(self)

    def _best_valid(self) -> dict[str, float] | None:
        best = next((e for e in self.history if e["epoch"] == self.best_epoch), None)
        return best["valid"] if best else None

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
            resume_from_last(self)
        stopped_early = self.epochs_without_improvement >= self.config.patience
        epochs_bar = tqdm(
            total=self.config.epochs,
            initial=self.epoch,
            desc="training",
            unit="epoch",
            disable=not (self.config.progress and ranks.is_main()),
        )
        saved_generator = getattr(self.measure, "generator", None)
        try:
            stopped_early = self._epochs(epochs_bar, stopped_early)
        finally:
            if self.world_size > 1 and self.measure is not None:
                self.measure.generator = saved_generator
        epochs_bar.close()
        restore_best(self)
        if "test" in self.dataset:
            self.test_metrics = self.evaluate("test")
            self._write_metrics()
        return {
            "best_epoch": self.best_epoch,
            "best_valid": self._best_valid(),
            "test": self.test_metrics,
            "epochs_run": self.epoch,
            "stopped_early": stopped_early,
        }

    def _epochs(self, epochs_bar, stopped_early: bool) -> bool:
        """The epochs of :meth:`fit`; returns whether it stopped early."""
        while self.epoch < self.config.epochs and not stopped_early:
            started = time.perf_counter()
            if self.world_size > 1:
                ranks.seed_epoch(self.config.seed, self.epoch + 1, self.measure, self.device)
            train_stats = self._train_epoch(self.epoch + 1)
            if self._ddp is not None:  # evaluate (and save) rank 0's batch-norm statistics
                ranks.broadcast_from_rank0(list(self.model.buffers()))
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
            if is_better(value, self.best_value, self.config.select_on):
                self.best_epoch, self.best_value = self.epoch, value
                self.epochs_without_improvement = 0
                if self.out_dir is None:
                    self._best_weights = copy.deepcopy(trainer_weights(self))
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
        return stopped_early

    def _count_steps(self) -> int:
        rows, config = len(self.dataset["train"]), self.config
        return ranks.count_steps(rows, config.batch_size, config.max_steps_per_epoch)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        if self.measure is not None:
            self.measure.train()
        # One process's shuffled batches, or this rank's part of each of them.
        loader = ranks.train_loader(
            self.dataset["train"], self.config.batch_size, self.config.seed, epoch
        )
        totals = {"train_loss": 0.0, "task_loss": 0.0, "penalty": 0.0}
        steps = 0
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch}/{self.config.epochs}",
            disable=not (self.config.progress and ranks.is_main()),
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
        Under a process group these are the global batch's, identical on every rank
        (:func:`~mdmest.fusion.training.distributed.distributed_loss`).
        """
        batch = to_device(batch, self.device)
        if self._ddp is not None:
            loss, losses = ranks.distributed_loss(
                self._ddp,
                batch,
                task_loss=self._task_loss,
                measure=self.measure,
                penalty_weight=self.config.penalty_weight,
                step=self.global_step + 1,
            )
        else:
            loss, losses = self._local_loss(batch)
        optimizer_step(self, loss)
        self.global_step += 1
        return losses

    def _local_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to back-propagate on ``batch`` (one process) and its three values."""
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
        losses = {
            "train_loss": loss.item(),
            "task_loss": task_loss.item(),
            "penalty": penalty_value,
        }
        return loss, losses

    # ------------------------------------------------------------------ evaluation
    def predict(self, split: str, drop: Sequence[str] = ()) -> Predictions:
        """Predictions, labels and critic scores on every segment of ``split`` ("train", "valid"
        or "test"), with the modalities ``drop`` removed (see
        :func:`~mdmest.fusion.training.drop_modalities`)."""
        return predict(
            self.model,
            self.dataset[split],
            batch_size=self.config.batch_size,
            device=self.device,
            measure=self.measure,
            drop=drop,
            name=split,
        )

    def evaluate(self, split: str, drop: Sequence[str] = ()) -> dict[str, float]:
        """All regression metrics on ``split``, optionally with modalities dropped."""
        return self.predict(split, drop).metrics()

    def bound_estimate(self, predictions: Predictions) -> float:
        """The measure's bound on the representations of ``predictions`` (NaN without a measure),
        streamed over batches of about ``config.batch_size`` rows, the size the critic trains on
        (see :func:`~mdmest.fusion.training.evaluation.bound_estimate`)."""
        return bound_estimate(
            self.measure,
            predictions,
            batch_size=self.config.batch_size,
            seed=self.config.seed,
            epoch=self.epoch,
        )


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
