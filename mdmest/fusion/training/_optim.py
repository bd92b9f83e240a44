"""The fusion model's optimiser: Adam, or the MAG recipe (AdamW with linear warm-up and decay)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mdmest.fusion.training import distributed as ranks
from mdmest.fusion.training.config import TrainConfig

__all__ = ["linear_warmup", "make_optimizer", "optimizer_step"]


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


def optimizer_step(trainer, loss: torch.Tensor) -> None:
    """Back-propagate ``loss`` into the model and the critic and step both optimisers (and the
    schedule); under DDP the critic's gradients are averaged over the ranks here."""
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.critic_optimizer is not None:
        trainer.critic_optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=trainer._model_params + trainer._critic_params)
    if trainer._ddp is not None:  # DDP averaged the model's gradients; the critic's are here
        ranks.all_reduce_mean_grads(trainer._critic_params)
    if trainer.config.grad_clip is not None:
        nn.utils.clip_grad_norm_(trainer._model_params, trainer.config.grad_clip)
    trainer.optimizer.step()
    if trainer.scheduler is not None:
        trainer.scheduler.step()
    if trainer.critic_optimizer is not None:
        trainer.critic_optimizer.step()
