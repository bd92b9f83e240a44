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
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from mdmest.fusion.base import FusionModel
from mdmest.fusion.data import MultimodalDataset, make_loader
from mdmest.fusion.models import build_model
from mdmest.fusion.training._optim import make_optimizer
from mdmest.fusion.training.checkpoint import (
    check_resumable,
    load_trainer_state,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    seed_everything,
    trainer_state,
    trainer_weights,
    write_json,
)
from mdmest.fusion.training.config import TASK_LOSSES, TrainConfig, check_device
from mdmest.fusion.training.evaluation import Predictions, is_better, predict, to_device

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
        return trainer_state(self)

    def load_state(self, checkpoint: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: model, measure (and its EMA), optimisers, progress."""
        load_trainer_state(self, checkpoint)

    def _save(self, name: str) -> None:
        if self.out_dir is not None:
            save_checkpoint(self.out_dir / name, self.state_dict())

    def _write_metrics(self) -> None:
        if self.out_dir is None:
            return
        payload = {
            "config": self.config.to_dict(),
            "model_spec": self.model_spec,
            "metadata": self.metadata,
            "select_on": self.config.select_on,
            "best_epoch": self.best_epoch,
            "best_valid": self._best_valid(),
            "test": self.test_metrics,
            "epochs": self.history,
        }
        write_json(self.out_dir / "metrics.json", payload)

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
            if self.out_dir is None:
                raise ValueError("resume=True needs an out_dir to find last.pt in")
            last = self.out_dir / "last.pt"
            if last.is_file():
                checkpoint = read_checkpoint(last, map_location=self.device)
                check_resumable(checkpoint, self.model_spec, self.config.to_dict())
                self.load_state(checkpoint)
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
        epochs_bar.close()
        self._restore_best()
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

    def _restore_best(self) -> None:
        best = self._best_weights
        if self.out_dir is not None and (self.out_dir / "best.pt").is_file():
            best = read_checkpoint(self.out_dir / "best.pt", map_location=self.device)
        if best is not None:
            load_weights(self, best)

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
        batch = to_device(batch, self.device)
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
        """The measure's bound on the representations of ``predictions`` (NaN without a measure).

        Streamed (:class:`mdmest.streaming.StreamingBound`) over batches of about
        ``config.batch_size`` rows, the size the critic trains on: product rows are drawn within
        each batch and the bound is that of all rows together (the DV log-mean-exp over every
        product row, not a mean of per-batch bounds), so memory stays bounded by one batch and,
        under a process group, the statistics reduce over ranks. A measure without a streaming
        form (e.g. a decomposition) gets one ``estimate`` over all rows.
        """
        if self.measure is None:
            return float("nan")
        views = predictions.representations
        streaming = getattr(self.measure, "streaming", None)
        if streaming is None:
            return float(self.measure.estimate(*views))
        try:
            bound = streaming()
        except TypeError:  # a measure whose bound does not accumulate
            return float(self.measure.estimate(*views))
        # Near-equal batches of at least batch_size (>= 2) rows each: no short last batch.
        batches = max(1, views[0].shape[0] // max(2, self.config.batch_size))
        for batch in zip(*(z.tensor_split(batches) for z in views)):
            bound.update(*batch)
        return float(bound.compute())


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
