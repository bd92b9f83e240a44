"""The dependency penalty as a PyTorch Lightning callback (needs the ``lightning`` package)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from mdmest.distributed import all_reduce_mean_grads, is_distributed

__all__ = ["DependencyPenalty"]


class DependencyPenalty(pl.Callback):
    """Add ``weight * measure(z_1, ..., z_K)`` to a LightningModule's loss and train the critic.

    Keep it as an attribute of the LightningModule, return it from ``configure_callbacks`` and add
    ``self.penalty(z_1, ..., z_K)`` to the loss in ``training_step``. Calling it returns
    ``measure.loss(*views, weight=weight)``: its value is ``weight`` × the measure's loss (minus
    its lower bound, plus the measure's own penalties), its gradient reaches the encoders
    weighted by ``weight`` and the critic unweighted, so the module's single backward pass trains
    both. The critic's parameters belong to this callback's own Adam optimiser (learning rate
    ``critic_lr``), stepped after every training batch in which the penalty was called; the
    LightningModule's optimiser never sees them (the measure is not one of its submodules).

    After each such batch it logs ``<name>/bound`` (the measure's bound on that batch) and
    ``<name>/penalty`` (the unweighted ``measure(...)``), per step and averaged per epoch. Its
    ``state_dict`` (the measure's weights and the critic's optimiser) is saved in Lightning's
    checkpoints and restored with them. Under DDP the critic's gradients are averaged over the
    ranks before its step; build the measure with ``distributed=True`` to draw its product rows
    from the global batch. The critic steps on every training batch, also when Lightning
    accumulates the module's gradients over several (``accumulate_grad_batches``); it is tested
    in float32.

    Parameters
    ----------
    measure : mdmest.DependencyMeasure
        E.g. ``TotalCorrelation([d_1, ..., d_K])``; it is moved to the module's device.
    weight : float
        The weight λ >= 0 of the penalty in the loss (0: the critic learns, the encoders do not
        feel it).
    critic_lr : float
        Learning rate of the critic's Adam optimiser.
    name : str
        Prefix of the logged values.

    Examples
    --------
    See docs/integrations.md for a module that trains with it.
    """

    def __init__(
        self,
        measure: nn.Module,
        weight: float,
        *,
        critic_lr: float = 1e-4,
        name: str = "dependency",
    ) -> None:
        if not callable(getattr(measure, "loss", None)):
            raise TypeError(
                "measure must be an mdmest measure, with a loss(*views, weight=...) method; got "
                f"{type(measure).__name__}"
            )
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if not critic_lr > 0:
            raise ValueError(f"critic_lr must be positive, got {critic_lr}")
        self.measure = measure
        self.weight = float(weight)
        self.critic_lr = critic_lr
        self.name = name
        self.critic_params = [p for p in measure.parameters() if p.requires_grad]
        self.critic_optimizer: torch.optim.Optimizer | None = None
        self._saved_optimizer: dict[str, Any] | None = None
        self._batch_rows: int | None = None  # rows of the batch the penalty was called on

    def __call__(self, *views: torch.Tensor) -> torch.Tensor:
        """The penalty term ``weight * measure(*views)`` to add to the loss (views of shape
        (B, d_k))."""
        term = self.measure.loss(*views, weight=self.weight)
        self._batch_rows = int(views[0].shape[0])
        return term

    # -- Lightning's hooks ------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        owned = {id(p) for p in pl_module.parameters()}
        if any(id(p) in owned for p in self.critic_params):
            raise ValueError(
                "the measure's parameters are also the LightningModule's (is the measure one of "
                "its submodules?), so the module's optimiser would step the critic too; keep the "
                "measure only inside the DependencyPenalty"
            )
        self.measure.to(pl_module.device)
        if self.critic_optimizer is None and self.critic_params:
            self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=self.critic_lr)
        if self.critic_optimizer is not None and self._saved_optimizer is not None:
            self.critic_optimizer.load_state_dict(self._saved_optimizer)
            self._saved_optimizer = None

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._batch_rows = None
        if self.critic_optimizer is not None:
            self.critic_optimizer.zero_grad(set_to_none=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        if self._batch_rows is None:  # the penalty was not called in this batch
            return
        if self.critic_optimizer is not None:
            if is_distributed():
                all_reduce_mean_grads(self.critic_params)
            self.critic_optimizer.step()
            self.critic_optimizer.zero_grad(set_to_none=True)
        for key, value in (("bound", self.measure.last_bound), ("penalty", self.measure.last_loss)):
            pl_module.log(
                f"{self.name}/{key}",
                value,
                on_step=True,
                on_epoch=True,
                batch_size=self._batch_rows,
            )

    def state_dict(self) -> dict[str, Any]:
        optimizer = self.critic_optimizer
        return {
            "measure": self.measure.state_dict(),
            "critic_optimizer": optimizer.state_dict() if optimizer is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.measure.load_state_dict(state_dict["measure"])
        saved = state_dict["critic_optimizer"]
        if saved is not None and self.critic_optimizer is not None:
            self.critic_optimizer.load_state_dict(saved)
        else:  # restored before setup built the optimiser: load it there
            self._saved_optimizer = saved
