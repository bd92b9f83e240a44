"""One training step: the penalised loss, and the optimisers of the model and the critic.

The model's optimiser is Adam, or the MAG recipe (AdamW with linear warm-up and decay); the
critic's is Adam.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mdmest.fusion.training import distributed as ranks
from mdmest.fusion.training.config import TrainConfig

__all__ = ["Optimizers", "linear_warmup", "make_optimizer", "penalised_loss"]


def make_optimizer(
    model: nn.Module, params: Sequence[nn.Parameter], config: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR | None]:
    """The optimiser of ``params`` (``model``'s trainable parameters) and its schedule, if any.

    Models that define ``param_groups`` (MAG-BERT / MAG-XLNet) get the MAG recipe: AdamW, no
    decay on bias/LayerNorm, a linear warm-up over ``config.warmup_fraction`` of ``total_steps``
    then a linear decay to 0; the others Adam at a constant learning rate, without schedule.
    """
    if hasattr(model, "param_groups"):
        optimizer = torch.optim.AdamW(model.param_groups(config.weight_decay), lr=config.lr)
        warmup = max(1, round(config.warmup_fraction * total_steps))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup(warmup, total_steps))
        return optimizer, schedule
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay), None


def linear_warmup(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear rise over ``warmup_steps``, then linear decay to 0.

    Examples
    --------
    >>> factor = linear_warmup(2, 6)
    >>> [factor(step) for step in range(7)]
    [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


class Optimizers:
    """The model's optimiser (and schedule) and the critic's, stepped together on one loss.

    Parameters
    ----------
    model : nn.Module
        Its trainable parameters are optimised (:func:`make_optimizer`).
    measure : nn.Module or None
        The critic's trainable parameters get Adam at ``config.critic_lr`` (none: no critic).
    config : TrainConfig
        Learning rates, weight decay, warm-up, ``grad_clip``.
    total_steps : int
        Steps of the whole run (the MAG schedule's length).
    """

    #: The checkpoint keys of the model's optimiser, the critic's optimiser and the schedule.
    KEYS = ("optimizer_state", "critic_optimizer_state", "scheduler_state")

    def __init__(
        self, model: nn.Module, measure: nn.Module | None, config: TrainConfig, total_steps: int
    ) -> None:
        self.model_params = [p for p in model.parameters() if p.requires_grad]
        if not self.model_params:
            raise ValueError("the model has no trainable parameters")
        self.optimizer, self.scheduler = make_optimizer(
            model, self.model_params, config, total_steps
        )
        self.critic_params = (
            [p for p in measure.parameters() if p.requires_grad] if measure is not None else []
        )
        self.critic_optimizer = (
            torch.optim.Adam(self.critic_params, lr=config.critic_lr)
            if self.critic_params
            else None
        )
        self.grad_clip = config.grad_clip

    def _parts(self) -> tuple:
        return self.optimizer, self.critic_optimizer, self.scheduler

    def step(self, loss: torch.Tensor, *, average_critic_grads: bool = False) -> None:
        """Back-propagate ``loss`` into the model's and the critic's parameters and step both
        optimisers (and the schedule); ``average_critic_grads`` averages the critic's gradients
        over the ranks (under DDP, which averages the model's itself)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.critic_optimizer is not None:
            self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self.model_params + self.critic_params)
        if average_critic_grads:
            ranks.all_reduce_mean_grads(self.critic_params)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model_params, self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.critic_optimizer is not None:
            self.critic_optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        """The three states under :attr:`KEYS` (``None`` for a part this run does not have)."""
        return {
            key: part.state_dict() if part is not None else None
            for key, part in zip(self.KEYS, self._parts())
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (parts saved as ``None`` are left as they are)."""
        for key, part in zip(self.KEYS, self._parts()):
            if part is not None and state[key] is not None:
                part.load_state_dict(state[key])


def penalised_loss(
    model: nn.Module,
    batch: dict,
    *,
    task_loss: nn.Module,
    measure: nn.Module | None,
    penalty_weight: float,
    step: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``task_loss + penalty_weight × measure(z...)`` on ``batch`` (one process) and its three values:
    ``train_loss``, ``task_loss`` and ``penalty`` (the unweighted ``measure(...)``, 0 without one).

    The encoders get ``penalty_weight`` × the measure's gradient and the critic the measure's own gradient
    (it tightens the bound whatever the weight, also 0), so one backward pass serves both
    optimisers. A non-finite loss raises a ``FloatingPointError`` naming ``step``.
    """
    output = model(batch)
    task = task_loss(output.prediction, batch["label"])
    loss = task
    penalty = 0.0
    if measure is not None:
        loss = task + measure.loss(*output.representations, weight=penalty_weight)
        penalty = measure.last_loss.item()
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"non-finite loss at step {step} (task {task.item()}, penalty {penalty}); lower the "
            "learning rate or the penalty weight"
        )
    return loss, {"train_loss": loss.item(), "task_loss": task.item(), "penalty": penalty}
