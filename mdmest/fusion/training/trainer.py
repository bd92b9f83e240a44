"""Train and evaluate fusion models with a dependency penalty (paper Eq. 5).

The objective is ``L = L_task + weight * measure(z_text, z_audio, z_video)``, where
``measure(...)`` is minus the measure's lower bound (plus its own penalties, e.g. the gradient
penalty), so minimising ``L`` maximises the dependency among the modality representations. The
critic inside the measure has its own optimiser and minimises the same ``measure(...)``, which
tightens the bound: the weighted term is ``measure.loss(..., weight=weight)``, whose gradient is
weighted for the encoders only, so the critic's step does not depend on the weight. Model
selection and early stopping use the validation split only. Logging, early stopping and
checkpoints are callbacks (:mod:`~mdmest.fusion.training.callbacks`).

Under ``torchrun`` (W > 1 ranks) it trains data-parallel, product rows drawn from the global batch;
rank 0 writes the files (:mod:`~mdmest.fusion.training.distributed`, docs/distributed.md).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from mdmest.fusion.base import MODALITIES, FusionModel
from mdmest.fusion.data import MultimodalDataset
from mdmest.fusion.training import distributed as ranks
from mdmest.fusion.training._optim import Optimizers, penalised_loss
from mdmest.fusion.training.callbacks import Callback, ModelCheckpoint, with_default_callbacks
from mdmest.fusion.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, read_checkpoint
from mdmest.fusion.training.config import TASK_LOSSES, TrainConfig, check_device
from mdmest.fusion.training.evaluation import Predictions, bound_estimate, predict, to_device
from mdmest.fusion.training.state import (
    TrainerState,
    check_resumable,
    rng_state,
    seed_everything,
    set_rng_state,
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
        Folder for ``best.pt``, ``last.pt`` and ``metrics.json`` (a
        [`ModelCheckpoint`][mdmest.fusion.training.callbacks.ModelCheckpoint] is added for it);
        ``None`` writes nothing and keeps the best weights in memory.
    model_spec : dict, optional
        Keyword arguments of :func:`~mdmest.fusion.models.build_model` that rebuild ``model``;
        stored in the checkpoints so that :meth:`from_checkpoint` needs nothing else.
    metadata : dict, optional
        JSON-serialisable notes kept in checkpoints and ``metrics.json`` (the command line stores
        how to reload the data there).
    callbacks : sequence of Callback, optional
        Hooks into the loop, called in order (:mod:`~mdmest.fusion.training.callbacks`: CSV or
        TensorBoard logs, your own rules); the defaults are added after them
        ([`with_default_callbacks`][mdmest.fusion.training.callbacks.with_default_callbacks]).

    Attributes
    ----------
    state : TrainerState
        The run's progress (epoch, step, best epoch, history, test metrics); saved in checkpoints
        with the weights, the optimisers and the random state (:meth:`state_dict`).

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
        callbacks: Iterable[Callback] = (),
    ) -> None:
        #: Ranks of the process group training together (1: one process, the usual path).
        self.world_size = ranks.world_size()
        self.device = ranks.train_device(check_device(config.device))
        if measure is None and config.penalty != "none":  # record the kwargs the measure gets
            config = dataclasses.replace(
                config, measure_kwargs=config.effective_measure_kwargs(model)
            )
        self.config = config
        self.dataset = dataset
        self.model_spec = dict(model_spec) if model_spec is not None else None
        self.metadata = dict(metadata) if metadata is not None else {}
        self.callbacks = with_default_callbacks(callbacks, out_dir, progress=config.progress)
        seed_everything(config.seed)
        self.model = model.to(self.device)
        # Under a process group the measure draws its product rows from the global batch.
        measure = config.penalty_measure(model, measure, distributed=self.world_size > 1)
        self.measure = measure.to(self.device) if measure is not None else None
        self._task_loss = TASK_LOSSES[config.task_loss]()

        self.steps_per_epoch = ranks.count_steps(
            len(dataset["train"]), config.batch_size, config.max_steps_per_epoch
        )
        self.optimizers = Optimizers(
            self.model, self.measure, config, config.epochs * self.steps_per_epoch
        )
        self.optimizer = self.optimizers.optimizer
        self.scheduler = self.optimizers.scheduler
        self.critic_optimizer = self.optimizers.critic_optimizer
        # Under a process group: the model in DDP, the critic's gradients all-reduced after backward.
        self._ddp: nn.Module | None = ranks.wrap_model(
            self.model, self.optimizers.model_params, self.measure, dataset["train"], self.device
        )

        self.state = TrainerState()
        # Without a ModelCheckpoint the best weights are kept in memory instead of in best.pt.
        self._best_weights: dict[str, Any] | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        dataset: MultimodalDataset,
        *,
        model: FusionModel | None = None,
        measure: nn.Module | None = None,
        out_dir: str | os.PathLike | None = None,
        callbacks: Iterable[Callback] = (),
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
        out_dir, callbacks : optional
            As for the constructor: where further training writes (``None``: nowhere), hooks.
        **config_overrides
            Fields of :class:`TrainConfig` to change, e.g. ``progress=False`` or ``device="cuda"``.
        """
        from mdmest.fusion.models import build_model

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
            callbacks=callbacks,
        )
        trainer.load_state_dict(checkpoint)
        return trainer

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue or evaluate the run (what ``best.pt``/``last.pt`` hold):
        the weights, the optimisers' and the schedule's states, :attr:`state`, the callbacks'
        states, the configuration and how to rebuild the model, and the random state."""
        callbacks = {cb.state_key: cb.state_dict() for cb in self.callbacks if cb.state_dict()}
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "model_class": type(self.model).__name__,
            "model_spec": self.model_spec,
            "metadata": self.metadata,
            "data_dims": dict(zip(MODALITIES, self.dataset.dims)),
            "representation_dims": list(self.model.representation_dims),
            **self._weights(),
            **self.optimizers.state_dict(),
            **self.state.state_dict(),
            "callbacks": callbacks,
            "rng_state": rng_state(),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: model, measure (and its EMA), optimisers, progress,
        callbacks' states, random state. The trainer must be built with the same model and
        penalty."""
        if (checkpoint["measure_state"] is None) != (self.measure is None):
            raise ValueError(
                "the checkpoint and this trainer disagree on the penalty: checkpoint "
                f"{checkpoint['config']['penalty']!r}, trainer {self.config.penalty!r}"
            )
        self._load_weights(checkpoint)
        self.optimizers.load_state_dict(checkpoint)
        self.state.load_state_dict(checkpoint)
        saved = checkpoint.get("callbacks", {})
        for callback in self.callbacks:
            if callback.state_key in saved:
                callback.load_state_dict(saved[callback.state_key])
        set_rng_state(checkpoint["rng_state"])

    def _weights(self) -> dict[str, Any]:
        """The weights of the model and of the measure (the critic and its running statistics)."""
        measure = self.measure
        return {
            "model_state": self.model.state_dict(),
            "measure_state": measure.state_dict() if measure is not None else None,
        }

    def _load_weights(self, weights: dict[str, Any]) -> None:
        self.model.load_state_dict(weights["model_state"])
        if self.measure is not None:
            self.measure.load_state_dict(weights["measure_state"])

    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        """The first :class:`ModelCheckpoint` among the callbacks (the one resume reads)."""
        return next((cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)), None)

    @property
    def out_dir(self) -> Path | None:
        """The folder of :attr:`checkpoint_callback` (``None``: the run writes no checkpoint)."""
        checkpoint = self.checkpoint_callback
        return checkpoint.folder if checkpoint is not None else None

    # Read-only views of :attr:`state`, for code written before it.
    epoch = property(lambda self: self.state.epoch)
    global_step = property(lambda self: self.state.global_step)
    best_epoch = property(lambda self: self.state.best_epoch)
    history = property(lambda self: self.state.history)
    test_metrics = property(lambda self: self.state.test_metrics)

    def _call(self, hook: str, *args: Any) -> None:
        """Call ``hook`` of every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Train until ``config.epochs`` or a callback stops it, then keep the best model.

        Each epoch appends train loss, task loss, penalty value, the bound estimate and the
        validation metrics to ``state.history``, then calls the callbacks' hooks (with ``out_dir``:
        ``last.pt``, ``best.pt`` when the validation metric improved, ``metrics.json``). At the end
        the best epoch's weights are loaded and, if the dataset has a "test" split, its test
        metrics are recorded.

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
            checkpoint = self.checkpoint_callback
            if checkpoint is None:
                raise ValueError("resume=True needs an out_dir (or a ModelCheckpoint) for last.pt")
            saved = checkpoint.read_last(self.device)
            if saved is not None:
                check_resumable(saved, self.model_spec, self.config.to_dict())
                self.load_state_dict(saved)
        self.state.should_stop = False  # the callbacks decide anew (EarlyStopping: at once)
        self._call("on_train_start")
        saved_generator = getattr(self.measure, "generator", None)
        try:
            self._epochs()
        finally:
            if self.world_size > 1 and self.measure is not None:
                self.measure.generator = saved_generator
        # The best epoch's weights: from best.pt when the run writes one, else from memory.
        checkpoint = self.checkpoint_callback
        best = checkpoint.read_best(self.device) if checkpoint is not None else self._best_weights
        if best is not None:
            self._load_weights(best)
        if "test" in self.dataset:
            self.state.test_metrics = self.evaluate("test")
        self._call("on_train_end")
        return {
            "best_epoch": self.state.best_epoch,
            "best_valid": self.state.best_valid,
            "test": self.state.test_metrics,
            "epochs_run": self.state.epoch,
            "stopped_early": self.state.should_stop,
        }

    def _epochs(self) -> None:
        """The epochs of :meth:`fit`, until ``config.epochs`` or ``state.should_stop``."""
        state = self.state
        while state.epoch < self.config.epochs and not state.should_stop:
            started = time.perf_counter()
            self._call("on_train_epoch_start")
            if self.world_size > 1:
                ranks.seed_epoch(self.config.seed, state.epoch + 1, self.measure, self.device)
            train_stats = self._train_epoch(state.epoch + 1)
            if self._ddp is not None:  # evaluate (and save) rank 0's batch-norm statistics
                ranks.broadcast_from_rank0(list(self.model.buffers()))
            valid = self.predict("valid")
            valid_metrics = valid.metrics()
            state.epoch += 1  # the bound's product rows are drawn with this epoch's seed
            record = {
                "epoch": state.epoch,
                **train_stats,
                "bound_estimate": self.bound_estimate(valid),
                "valid": valid_metrics,
                "seconds": time.perf_counter() - started,
            }
            if state.record(record, self.config.select_on) and self.checkpoint_callback is None:
                self._best_weights = copy.deepcopy(self._weights())
            self._call("on_validation_end")
            self._call("on_train_epoch_end")

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
        for batch in loader:
            if steps == self.steps_per_epoch:
                break
            losses = self.train_step(batch)
            self._call("on_train_batch_end", losses)
            for key, value in losses.items():
                totals[key] += value
            steps += 1
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
        distributed = self._ddp is not None
        loss, losses = (ranks.distributed_loss if distributed else penalised_loss)(
            self._ddp if distributed else self.model,
            to_device(batch, self.device),
            task_loss=self._task_loss,
            measure=self.measure,
            penalty_weight=self.config.penalty_weight,
            step=self.state.global_step + 1,
        )
        self.optimizers.step(loss, average_critic_grads=distributed)
        self.state.global_step += 1
        return losses

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
            epoch=self.state.epoch,
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
    ``model_spec``, ``metadata``, ``callbacks``).
    """
    trainer = Trainer(model, dataset, config, **trainer_options)
    trainer.fit(resume=resume)
    return trainer
