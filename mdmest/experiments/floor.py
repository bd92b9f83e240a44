"""The floor: a DV / NWJ training step written inline in plain PyTorch, with nothing from mdmest.

Benchmarks compare the library against this, for speed (same work, less framework:
``benchmarks/core_speed.py``) and for accuracy (what a user would write by hand at the same
budget: ``benchmarks/accuracy_ladder.py``). It imports nothing from mdmest on purpose.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["floor_critic", "floor_estimate", "floor_loss", "floor_step"]


def floor_critic(in_features: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """A ReLU MLP from ``in_features`` to one score: ``depth`` hidden layers of ``hidden`` units."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def floor_loss(critic: nn.Module, views: list[torch.Tensor], bound: str = "dv") -> torch.Tensor:
    """Negated DV or NWJ bound with one per-view shuffle, the way it is usually hand-written."""
    batch = views[0].shape[0]
    joint = torch.cat(views, dim=1)
    shuffled = [views[0]] + [v[torch.randperm(batch, device=v.device)] for v in views[1:]]
    product = torch.cat(shuffled, dim=1)
    t_joint = critic(joint).squeeze(1)
    t_product = critic(product).squeeze(1)
    if bound == "dv":
        value = t_joint.mean() - (torch.logsumexp(t_product, 0) - math.log(batch))
    else:
        value = t_joint.mean() - torch.exp(t_product - 1.0).mean()
    return -value


def floor_step(critic, optimizer, views, bound: str = "dv") -> torch.Tensor:
    """One optimiser step on `floor_loss`; returns the loss."""
    loss = floor_loss(critic, views, bound)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def floor_estimate(
    views,
    steps: int,
    batch_size: int,
    lr: float,
    test_fraction: float,
    seed: int,
    bound: str = "dv",
) -> float:
    """Train the floor critic on numpy/torch views like `mdmest.estimate` does and return the
    held-out bound (the baseline of the accuracy ladder)."""
    torch.manual_seed(seed)
    tensors = [torch.as_tensor(v, dtype=torch.float32) for v in views]
    n = tensors[0].shape[0]
    order = torch.randperm(n)
    n_test = int(round(n * test_fraction))
    test = [t[order[:n_test]] for t in tensors]
    train = [t[order[n_test:]] for t in tensors]
    critic = floor_critic(sum(t.shape[1] for t in tensors))
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    n_train = train[0].shape[0]
    for _ in range(steps):
        idx = torch.randint(n_train, (batch_size,))
        floor_step(critic, optimizer, [t[idx] for t in train], bound)
    with torch.no_grad():
        return float(-floor_loss(critic, test, bound))
