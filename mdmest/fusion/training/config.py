"""Hyperparameters of a training run: :class:`TrainConfig`, the one home of the defaults and presets.

Examples
--------
>>> config = TrainConfig.for_model("ef_lstm", "mosei", epochs=5, lr=None)
>>> config.batch_size, config.lr, config.epochs, config.task_loss
(128, 0.005, 5, 'l1')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mdmest._validation import check_choice, check_device
from mdmest.fusion.data.dataset import PRESETS

__all__ = [
    "PENALTIES",
    "PRESETS",
    "SELECTABLE_METRICS",
    "TASK_LOSSES",
    "TrainConfig",
    "check_device",
]

TASK_LOSSES: dict[str, Callable[[], nn.Module]] = {"l1": nn.L1Loss, "mse": nn.MSELoss}
PENALTIES = ("none", "dv", "f", "wasserstein")
#: Validation metrics that can pick the best epoch ("mae" is minimised, the others maximised).
SELECTABLE_METRICS = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    :meth:`for_model` fills in a model's published settings (batch size, learning rate, ...).

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
        Wasserstein measure, ``{"normalize": False}``; see :meth:`effective_measure_kwargs`.
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
        ``seed + e``) when the :class:`Trainer` is built, so the critic and everything after are
        reproducible. A model built before that is initialised from whatever the random state
        was: call ``seed_everything(seed)`` before ``build_model`` (``mdmest train`` does) for a
        run that a fresh process reproduces.
    progress : bool
        Show tqdm progress bars.
    device : str
        Torch device of the model, the critic and the batches ("cpu", "cuda", "cuda:1", ...);
        the trainer checks that this machine has it (:func:`check_device`).
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
        check_choice("task_loss", self.task_loss, tuple(TASK_LOSSES))
        check_choice("penalty", self.penalty, PENALTIES)
        check_choice("select_on", self.select_on, SELECTABLE_METRICS)
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"max_steps_per_epoch must be >= 1, got {self.max_steps_per_epoch}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")
        check_device(self.device, available=False)

    @classmethod
    def for_model(cls, model: str, dataset: str = "mosi", **overrides: Any) -> TrainConfig:
        """The configuration of model ``model`` with its published settings on ``dataset``.

        The settings of :func:`mdmest.fusion.models.default_training` that are fields of this class
        (``batch_size``, ``lr``, ``weight_decay``, ``warmup_fraction``, ``epochs``, ``task_loss``)
        replace the class defaults; the task loss is "mse" for MAG models and "l1" otherwise when
        the preset does not name one. ``overrides`` replace both; an override that is ``None`` is
        ignored, so a command line can pass its optional flags straight through.

        Parameters
        ----------
        model : str
            A name of :func:`mdmest.fusion.models.model_names`, e.g. "ef_lstm" or "mag_bert".
        dataset : {"mosi", "mosei"}
            Whose preset to use.
        **overrides
            Fields of this class.
        """
        from mdmest.fusion.models import default_training

        check_choice("dataset preset", dataset, PRESETS)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise TypeError(f"unknown TrainConfig fields {unknown}; valid: {sorted(fields)}")
        settings: dict[str, Any] = {}
        for key, value in default_training(model, dataset).items():
            if key in fields:
                # The presets' numbers become the field's type (an int lr 1 is 1.0).
                kind = type(fields[key].default)
                settings[key] = kind(value) if kind in (int, float) else value
        settings.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**settings)

    def effective_measure_kwargs(self, model: nn.Module) -> dict[str, Any]:
        """The keyword arguments :func:`mdmest.make_measure` gets for ``model``.

        ``measure_kwargs``, plus, for "dv" and "f", ``critic_objective`` set to the paper's
        bound unless given; for the Wasserstein penalty when they do not set ``normalize``,
        ``normalize=True`` unless the model declares its representations bounded
        (``bounded_representations = True``: EF-LSTM, MFN, the tanh MLP): W_1 grows with their
        scale, and a penalty must not be raised by inflating it. Unbounded models (TFN, LMF, MAG)
        and models that say nothing (``FusionModel``'s default, or any other module) are
        standardised.

        Evidence (docs/reproduction.md, "The Wasserstein penalty's default"; breast-cancer views,
        10 seeds, weight 1): with the linear-output MLP, standardising lowered the test MAE by
        0.070 against the raw W_1 (9/10 seeds, Wilcoxon p = 0.004); with the tanh MLP it raised it
        by 0.044 (0/10, p = 0.002). So bounded representations are left as they are.
        """
        kwargs = dict(self.measure_kwargs)
        if self.penalty in ("dv", "f") and "critic_objective" not in kwargs:
            # The paper's objective (Eq. 6 and 7), not the measures' drop-in default ("auto").
            kwargs["critic_objective"] = self.penalty
        if self.penalty == "wasserstein" and "normalize" not in kwargs:
            kwargs["normalize"] = not getattr(model, "bounded_representations", False)
        return kwargs

    def penalty_measure(
        self, model: nn.Module, measure: nn.Module | None = None, *, distributed: bool = False
    ) -> nn.Module | None:
        """The measure a trainer of ``model`` steps: ``measure`` when given (checked against
        ``penalty``), else ``make_measure(penalty, model.representation_dims, **measure_kwargs)``
        (with ``distributed=True`` when asked: product rows from the global batch); ``None`` for
        ``penalty="none"``. The trainer first sets ``measure_kwargs`` to
        :meth:`effective_measure_kwargs`."""
        if measure is not None and self.penalty == "none":
            raise ValueError("a measure was passed but config.penalty is 'none'; name its kind")
        if measure is not None and not callable(getattr(measure, "loss", None)):
            raise TypeError(
                "measure must be an mdmest measure, with a loss(*views, weight=...) method; got "
                f"{type(measure).__name__}"
            )
        if measure is not None or self.penalty == "none":
            return measure
        from mdmest import make_measure

        kwargs = {"names": ("z_text", "z_audio", "z_video"), **self.measure_kwargs}
        if distributed:
            kwargs["distributed"] = True
        return make_measure(self.penalty, tuple(model.representation_dims), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-serialisable dict (as checkpoints store it)."""
        return dataclasses.asdict(self)
