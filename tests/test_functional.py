import math

import pytest
import torch

from mdmest import functional as Fn
from mdmest.critics import MLPCritic


def test_dv_bound_matches_the_formula():
    t_joint, t_product = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0, 2.0])
    expected = 1.5 - math.log((1 + math.e + math.e**2) / 3)
    assert Fn.dv_bound(t_joint, t_product).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("divergence", Fn.DIVERGENCES)
def test_f_bound_equals_the_f_gan_table(divergence):
    # v in a range where the direct formula f*(g(v)) is itself well defined
    v_joint, v_product = torch.linspace(-2, 2, 7), torch.linspace(-1.5, 1.5, 5)
    direct = (
        Fn.f_activation(v_joint, divergence).mean()
        - Fn.f_conjugate(Fn.f_activation(v_product, divergence), divergence).mean()
    )
    assert Fn.f_bound(v_joint, v_product, divergence).item() == pytest.approx(
        direct.item(), rel=1e-5
    )


@pytest.mark.parametrize("divergence", Fn.DIVERGENCES)
def test_bounds_stay_finite_for_large_critic_outputs(divergence):
    v = torch.tensor([-80.0, -40.0, 0.0, 40.0, 80.0])
    assert torch.isfinite(Fn.f_bound(v, v.flip(0), divergence))
    assert torch.isfinite(Fn.dv_bound(v, v.flip(0)))
    v.requires_grad_(True)
    Fn.f_bound(v, v, divergence).backward()
    assert torch.isfinite(v.grad).all()


def test_equal_critic_outputs_give_zero():
    t = torch.randn(16)
    assert Fn.dv_bound(t, t).item() <= 1e-6  # Jensen: mean(t) <= log mean exp(t)
    assert Fn.wasserstein_bound(t, t).item() == 0.0
    for divergence in Fn.DIVERGENCES:
        # the optimal constant critic for p = q gives 0 exactly
        optimum = {"kl": 1.0, "reverse_kl": -1.0, "chi2": 0.0, "hellinger": 0.0, "js": 0.0}[
            divergence
        ]
        zero = Fn.f_bound(torch.full((3,), optimum), torch.full((3,), optimum), divergence)
        if divergence == "reverse_kl":  # g(v) = -exp(-v) must equal -1 at the optimum: v = 0
            zero = Fn.f_bound(torch.zeros(3), torch.zeros(3), divergence)
        assert zero.item() == pytest.approx(0.0, abs=1e-6)


def test_unknown_divergence_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'kl', 'reverse_kl', 'chi2', 'hellinger', 'js'"):
        Fn.f_bound(torch.zeros(2), torch.zeros(2), "tv")


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    critic = lambda x: x[:, 0]  # noqa: E731  gradient norm exactly 1 everywhere
    joint, product = torch.randn(8, 3), torch.randn(16, 3)
    assert Fn.gradient_penalty(critic, joint, product).item() == pytest.approx(0.0, abs=1e-7)
    steep = lambda x: 3 * x[:, 0]  # noqa: E731
    assert Fn.gradient_penalty(steep, joint, product).item() == pytest.approx(4.0)


def test_gradient_penalty_reaches_the_critic_parameters():
    critic = MLPCritic(4, hidden=(8,))
    penalty = Fn.gradient_penalty(critic, torch.randn(5, 4), torch.randn(5, 4))
    penalty.backward()
    # every weight shapes the input gradient (the output bias cannot)
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)
    with pytest.raises(ValueError, match="multiple of joint rows"):
        Fn.gradient_penalty(critic, torch.randn(5, 4), torch.randn(7, 4))


def test_effective_sample_fraction_against_kish_formula():
    t = torch.tensor([0.3, -1.2, 2.0, 0.0, 0.7], dtype=torch.float64)
    w = torch.exp(t)
    assert Fn.effective_sample_fraction(t).item() == pytest.approx(
        (w.sum() ** 2 / (len(w) * (w**2).sum())).item()
    )
    # Stable where exp overflows: one row with all the weight leaves one effective row of N.
    assert Fn.effective_sample_fraction(torch.tensor([1000.0, 0.0, 0.0, 0.0])).item() == 0.25
    assert Fn.effective_sample_fraction(torch.full((7,), 123.0)).item() == pytest.approx(
        1.0, abs=1e-5
    )
