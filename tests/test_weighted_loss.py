"""measure.loss(*views, weight=): the critic's step does not depend on the weight, in any optimiser."""

import copy

import pytest
import torch
from torch import nn

from mdmest import DecomposedTotalCorrelation, TotalCorrelation, make_measure
from mdmest.functional import scale_grad

DIMS = (3, 2, 2)


def test_scale_grad_is_the_identity_forward_and_scales_the_gradient_backward():
    x = torch.randn(5, 3, requires_grad=True)
    for scale in (0.0, 0.1, -1.0):
        x.grad = None
        y = scale_grad(x, scale)
        assert torch.equal(y, x)
        (y * torch.arange(3.0)).sum().backward()
        assert torch.equal(x.grad, scale * torch.arange(3.0).expand(5, 3))
    with pytest.raises(ValueError, match="finite"):
        scale_grad(x, float("nan"))


def _setup(name, seed=0):
    """An encoder per view and a measure, built identically for every weight."""
    torch.manual_seed(seed)
    encoders = nn.ModuleList([nn.Linear(4, d) for d in DIMS])
    if name == "decomposed":
        measure = DecomposedTotalCorrelation(DIMS)
    else:
        measure = make_measure(name, DIMS)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(seed + 1))
    return encoders, measure, x


def _sgd_step(name, weight, lr=0.1):
    """One SGD step over encoders + critic with loss = task + measure.loss(weight=weight)."""
    encoders, measure, x = _setup(name)
    measure.generator = torch.Generator().manual_seed(2)
    optimizer = torch.optim.SGD([*encoders.parameters(), *measure.parameters()], lr=lr)
    views = [torch.tanh(encoder(x)) for encoder in encoders]
    task = sum(v.pow(2).mean() for v in views)
    loss = task + measure.loss(*views, weight=weight)
    before = copy.deepcopy(measure.state_dict())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = measure.state_dict()
    update = {k: after[k] - before[k] for k in before if before[k].is_floating_point()}
    return measure.last_loss, update


@pytest.mark.parametrize("name", ["dv", "f", "wasserstein", "decomposed"])
@pytest.mark.parametrize("weight", [0.0, 0.1])
def test_the_critic_steps_as_with_weight_one_and_the_encoders_get_weight_times(name, weight):
    _, update_one = _sgd_step(name, 1.0)
    unweighted, update = _sgd_step(name, weight)
    assert any(delta.abs().max() > 0 for delta in update_one.values())
    for key, delta in update_one.items():
        torch.testing.assert_close(update[key], delta, rtol=0, atol=1e-6, msg=key)

    # Encoder gradients: the task's plus weight × the measure's.
    encoders, measure, x = _setup(name)
    measure.generator = torch.Generator().manual_seed(2)
    views = [torch.tanh(encoder(x)) for encoder in encoders]
    task = sum(v.pow(2).mean() for v in views)
    task_grads = torch.autograd.grad(task, list(encoders.parameters()), retain_graph=True)
    penalty = measure(*views)
    penalty_grads = torch.autograd.grad(penalty, list(encoders.parameters()))

    encoders, measure, x = _setup(name)
    measure.generator = torch.Generator().manual_seed(2)
    views = [torch.tanh(encoder(x)) for encoder in encoders]
    task = sum(v.pow(2).mean() for v in views)
    grads = torch.autograd.grad(
        task + measure.loss(*views, weight=weight), list(encoders.parameters())
    )
    for grad, task_grad, penalty_grad in zip(grads, task_grads, penalty_grads):
        torch.testing.assert_close(grad, task_grad + weight * penalty_grad, rtol=1e-5, atol=1e-7)

    # The value is task + weight × measure(...); last_loss keeps measure(...).
    torch.testing.assert_close(unweighted, penalty.detach())


def test_the_value_is_weight_times_the_measure_and_weight_one_is_the_plain_loss():
    views = [torch.randn(16, d, generator=torch.Generator().manual_seed(d)) for d in DIMS]
    measure = TotalCorrelation(DIMS, ema_decay=None)
    measure.generator = torch.Generator().manual_seed(0)
    plain = measure(*views)
    measure.generator = torch.Generator().manual_seed(0)
    assert torch.equal(measure.loss(*views, weight=1.0), plain)
    measure.generator = torch.Generator().manual_seed(0)
    assert measure.loss(*views, weight=0.25).item() == pytest.approx(0.25 * plain.item())
    assert torch.equal(measure.last_loss, plain.detach())
    measure.generator = torch.Generator().manual_seed(0)
    assert measure.loss(*views, weight=0.0).item() == 0.0


def _sgd_bound(weight, steps=300, seed=0):
    """Train a critic with one SGD optimiser on 3 correlated Gaussian views (TC = 1.22 nats)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)

    def sample(n, generator):
        shared = torch.randn(n, 2, generator=generator)
        return [0.8 * shared + 0.6 * torch.randn(n, 2, generator=generator) for _ in range(3)]

    measure = TotalCorrelation([2, 2, 2])
    scales = nn.Parameter(torch.ones(3))  # a trivial encoder the penalty also trains
    optimizer = torch.optim.SGD([scales, *measure.parameters()], lr=0.05)
    for _ in range(steps):
        views = [s * x for s, x in zip(scales, sample(128, g))]
        loss = (scales - 1).pow(2).sum() + measure.loss(*views, weight=weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        views = [s * x for s, x in zip(scales, sample(2048, torch.Generator().manual_seed(99)))]
        return float(measure.estimate(*views, negatives=8))


def test_with_sgd_the_bound_at_weight_point_one_and_zero_matches_weight_one():
    # With `weight * measure(...)` instead, SGD scales the critic's step by the weight: here
    # 0.59 nats at 0.1 and 0.00 at 0, against 1.13 at 1 (1.14 and 1.14 with measure.loss).
    reference = _sgd_bound(1.0)
    assert reference > 0.8
    assert _sgd_bound(0.1) == pytest.approx(reference, abs=0.05)
    assert _sgd_bound(0.0) == pytest.approx(reference, abs=0.05)


def test_the_wasserstein_gradient_penalty_trains_the_critic_unweighted():
    # The penalty's interpolates are detached from the views: it reaches the critic only, unscaled.
    views = [torch.randn(16, d, generator=torch.Generator().manual_seed(d)) for d in DIMS]
    grads = {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        measure = make_measure("wasserstein", DIMS, penalty_weight=10.0)
        measure.generator = torch.Generator().manual_seed(0)
        measure.loss(*views, weight=weight).backward()
        grads[weight] = [p.grad for p in measure.critic.parameters()]
    for a, b in zip(grads[1.0], grads[0.0]):
        assert torch.equal(a, b)
