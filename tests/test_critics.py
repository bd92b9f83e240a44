"""MLPCritic's residual and LayerNorm options, and the critic of estimate's recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mdmest.critics import MLPCritic


def _rows(n=32, width=6, seed=0):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


def test_default_layers_unchanged():
    critic = MLPCritic(6)
    kinds = [type(layer) for layer in critic.net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert critic(_rows()).shape == (32,)


def test_residual_block_with_zero_weights_is_the_identity():
    torch.manual_seed(0)
    critic = MLPCritic(6, hidden=(16, 16, 16), activation="gelu", residual=True)
    blocks = [m for m in critic.net if hasattr(m, "linear")]
    assert len(blocks) == 2  # every hidden layer after the first
    x = _rows()
    with torch.no_grad():
        for block in blocks:
            block.linear.weight.zero_()
            block.linear.bias.zero_()
        # GELU(0) = 0, so each block adds nothing: first layer, activation, output layer.
        expected = critic.net[-1](critic.net[1](critic.net[0](x))).squeeze(-1)
        assert torch.allclose(critic(x), expected, atol=1e-6)


def test_layer_norm_makes_the_first_layer_scale_invariant():
    torch.manual_seed(0)
    critic = MLPCritic(6, hidden=(32, 32), activation="gelu", layer_norm=True)
    assert sum(isinstance(m, nn.LayerNorm) for m in critic.net) == 2
    x = _rows()
    before = critic(x).detach()
    with torch.no_grad():
        critic.net[0].weight.mul_(7.0)
        critic.net[0].bias.mul_(7.0)
    assert torch.allclose(critic(x), before, atol=1e-4)


def test_pre_norm_residual_ends_with_a_layer_norm():
    critic = MLPCritic(6, hidden=(16, 16), residual=True, layer_norm=True)
    assert isinstance(critic.net[-2], nn.LayerNorm)
    assert isinstance(critic.net[2].norm, nn.LayerNorm)
    assert critic(_rows()).shape == (32,)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="equal hidden widths"):
        MLPCritic(6, hidden=(32, 16), residual=True)
    with pytest.raises(ValueError, match="spectral_norm"):
        MLPCritic(6, layer_norm=True, spectral_norm=True)
    with pytest.raises(ValueError, match="hidden widths must be >= 1"):
        MLPCritic(6, hidden=(0,))


def test_residual_layer_norm_critic_learns_a_dependency():
    from mdmest.measures import TotalCorrelation
    from mdmest.tasks import gaussian_task_with_tc

    torch.manual_seed(0)
    views = [
        torch.as_tensor(v, dtype=torch.float32)
        for v in gaussian_task_with_tc(1.0, [2, 2]).sample(4000, seed=0)
    ]
    critic = MLPCritic(4, hidden=(32, 32, 32), activation="gelu", residual=True, layer_norm=True)
    measure = TotalCorrelation([2, 2], critic=critic, sampler="shifted")
    optimizer = torch.optim.Adam(measure.parameters(), lr=3e-3)
    for step in range(300):
        rows = torch.randint(0, 4000, (256,), generator=torch.Generator().manual_seed(step))
        loss = measure(*(v[rows] for v in views))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        value = float(measure.estimate(*views))
    assert 0.7 < value < 1.15  # the true value is 1 nat; an untrained critic reads about 0
