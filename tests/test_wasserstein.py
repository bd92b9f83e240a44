"""Wasserstein dependency: Lipschitz control, its correction, reproducible estimates, accuracy."""

import numpy as np
import pytest
import torch
from torch import nn

import mdmest
import mdmest.transforms
from mdmest import WassersteinDependency, make_measure
from mdmest import functional as Fn
from mdmest.tasks import correlated_pair

#: Exact W_1 between a correlated pair N(0, [[I, ρI], [ρI, I]]) (d features per view) and the
#: product of its marginals, from :func:`pair_w1` with 70 atoms per axis (converged to 1e-3).
PAIR_W1 = {
    (0.3, 1): 0.1733,
    (0.3, 2): 0.2706,
    (0.6, 1): 0.3664,
    (0.6, 2): 0.5714,
    (0.9, 1): 0.6359,
    (0.9, 2): 0.9891,
}


def pair_w1(rho: float, dim: int, atoms: int) -> float:
    """Exact W_1 of a correlated pair against its product, by a reduction to two dimensions.

    With u = (x + y)/√2 and v = (x − y)/√2 the joint is N(0, diag((1 + ρ)I, (1 − ρ)I)) and the
    product N(0, I); both are invariant under rotations of u and of v, so moving each point
    radially is optimal and W_1 equals W_1 between the laws of (|u|, |v|) in R² (Euclidean cost):
    (√(1 + ρ)·χ_d, √(1 − ρ)·χ_d) against (χ_d, χ_d), independent coordinates. Each law is
    discretised at ``atoms`` quantiles per axis and the transport solved exactly (POT).
    """
    import ot
    from scipy.stats import chi

    radii = chi.ppf((np.arange(atoms) + 0.5) / atoms, dim)

    def grid(scale_u, scale_v):
        u, v = np.meshgrid(scale_u * radii, scale_v * radii, indexing="ij")
        return np.stack([u.ravel(), v.ravel()], axis=1)

    joint, product = grid(np.sqrt(1 + rho), np.sqrt(1 - rho)), grid(1.0, 1.0)
    weights = np.full(atoms * atoms, 1.0 / (atoms * atoms))
    return float(ot.emd2(weights, weights, ot.dist(joint, product, metric="euclidean")))


def views(batch=64, dims=(2, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, d, generator=g) for d in dims]


class Cone(nn.Module):
    """T(x) = slope·‖x‖: gradient norm ``slope`` everywhere but at 0, and not linear, so its
    bound is not 0."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x):
        return self.slope * x.norm(dim=1)


def pair_tensors(rho, dim, n, seed):
    return [torch.as_tensor(v) for v in correlated_pair(rho, dim).sample(n, seed=seed)]


# --- the reference -------------------------------------------------------------------------------


def test_reference_table_is_reproduced_and_below_w2():
    for (rho, dim), value in PAIR_W1.items():
        assert pair_w1(rho, dim, atoms=30) == pytest.approx(value, rel=0.025)
        assert value < correlated_pair(rho, dim).w2_dependency


# --- generator: reproducible estimates ---------------------------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [("dv", {}), ("f", {}), ("wasserstein", {}), ("wasserstein", {"lipschitz_correction": True})],
)
def test_the_same_seed_gives_the_same_value_exactly(name, options):
    torch.manual_seed(0)
    measure = make_measure(name, (2, 2), **options)
    data = views()
    first = measure.estimate(*data, negatives=4, generator=7)
    assert measure.estimate(*data, negatives=4, generator=7).item() == first.item()
    assert measure.estimate(*data, negatives=4, generator=8).item() != first.item()
    # A generator object is used as given (and advanced), an int is the same as its seed.
    generator = torch.Generator().manual_seed(7)
    assert measure.estimate(*data, negatives=4, generator=generator).item() == first.item()
    assert measure.estimate(*data, negatives=4, generator=generator).item() != first.item()
    assert measure.generator is None  # restored


def test_no_generator_keeps_the_measures_own():
    torch.manual_seed(0)
    measure = make_measure("dv", (2, 2))
    data = views()
    own = torch.Generator().manual_seed(3)
    measure.generator = own
    value = measure.estimate(*data)
    assert value.item() == measure.estimate(*data, generator=3).item()
    assert measure.generator is own
    # a seed given to one call leaves the measure's generator where it was
    state = own.get_state()
    measure.estimate(*data, generator=11)
    assert torch.equal(own.get_state(), state)


def test_bad_generators_are_refused():
    measure = make_measure("wasserstein", (2, 2))
    for bad in (1.5, "7", True):
        with pytest.raises(TypeError, match="generator must be a torch.Generator, an int seed"):
            measure.estimate(*views(), generator=bad)
    assert measure.training  # the mode is restored after the error


# --- Lipschitz correction --------------------------------------------------------------------


def test_correction_divides_by_the_largest_slope_and_never_raises_the_value():
    data = pair_tensors(0.9, 1, 256, seed=0)
    raw = WassersteinDependency([1, 1], critic=Cone(5.0))
    assert raw.lipschitz_correction is False  # the default
    for correction in (True, 0.99, 0.5):
        corrected = WassersteinDependency([1, 1], critic=Cone(5.0), lipschitz_correction=correction)
        value = corrected.estimate(*data, generator=0).item()
        assert value == pytest.approx(raw.estimate(*data, generator=0).item() / 5, rel=1e-5)
    gentle = WassersteinDependency([1, 1], critic=Cone(0.5), lipschitz_correction=True)
    plain = WassersteinDependency([1, 1], critic=Cone(0.5))
    assert gentle.estimate(*data, generator=0).item() == plain.estimate(*data, generator=0).item()


def test_correction_options_are_checked():
    for bad in (0, 0.0, 1.5, -0.1, "max"):
        with pytest.raises(ValueError, match="lipschitz_correction must be True, False or a quan"):
            WassersteinDependency([1, 1], lipschitz_correction=bad)
    assert "one_sided_penalty=True" in repr(WassersteinDependency([1, 1]))


def test_gradient_penalty_estimate_works_under_inference_mode():
    torch.manual_seed(0)
    measure = WassersteinDependency([2, 2], lipschitz_correction=True)
    optimizer = torch.optim.Adam(measure.parameters(), lr=1e-3)
    data = [torch.as_tensor(v) for v in correlated_pair(0.8, 2).sample(256, seed=0)]
    for _ in range(20):
        optimizer.zero_grad()
        measure(*data).backward()
        optimizer.step()
    expected = measure.estimate(*data, negatives=3, generator=1)
    with torch.inference_mode():
        inference_views = [v.clone() for v in data]  # inference tensors
        value = measure.estimate(*inference_views, negatives=3, generator=1)
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
        slope = Fn.lipschitz_constant(measure.critic_scores, torch.cat(inference_views, dim=1))
    assert slope.item() > 0


def test_lipschitz_constant_quantile():
    points = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    critic = lambda x: x[:, 0] ** 2  # noqa: E731  gradient norms 2, 4, 6, 8
    assert Fn.lipschitz_constant(critic, points).item() == pytest.approx(8.0)
    assert Fn.lipschitz_constant(critic, points, quantile=0.5).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="quantile must lie in"):
        Fn.lipschitz_constant(critic, points, quantile=0.0)


def test_one_sided_penalty_ignores_slopes_below_one():
    joint, product = torch.randn(8, 3), torch.randn(16, 3)
    gentle = lambda x: 0.5 * x[:, 0]  # noqa: E731
    steep = lambda x: 3 * x[:, 0]  # noqa: E731
    assert Fn.gradient_penalty(gentle, joint, product).item() == pytest.approx(0.25)
    assert Fn.gradient_penalty(gentle, joint, product, one_sided=True).item() == 0.0
    assert Fn.gradient_penalty(steep, joint, product, one_sided=True).item() == pytest.approx(4.0)


def test_measure_uses_the_one_sided_penalty_by_default():
    torch.manual_seed(0)
    data = views(32)
    for one_sided in (True, False):
        measure = WassersteinDependency([2, 2], critic=nn.Linear(4, 1), one_sided_penalty=one_sided)
        with torch.no_grad():
            measure.critic.weight.fill_(0.1)  # slope 0.2 < 1
        measure.generator = torch.Generator().manual_seed(0)
        loss = measure(*data)
        expected_penalty = 0.0 if one_sided else 100.0 * 0.8**2
        assert loss.item() == pytest.approx(-measure.last_bound.item() + expected_penalty, abs=1e-4)


def test_default_spectral_norm_critic_is_exactly_one_lipschitz_after_training():
    torch.manual_seed(0)
    measure = WassersteinDependency([3, 3], lipschitz="spectral_norm")
    optimizer = torch.optim.Adam(measure.parameters(), lr=3e-2)
    for seed in range(20):
        optimizer.zero_grad()
        measure(*views(64, (3, 3), seed)).backward()
        optimizer.step()
    measure.eval()
    x = (3 * torch.randn(2048, 6)).requires_grad_(True)
    (grad,) = torch.autograd.grad(measure.critic_scores(x).sum(), x)
    assert grad.norm(dim=1).max().item() <= 1.0 + 1e-5
    weights = [m.weight for m in measure.critic.modules() if isinstance(m, nn.Linear)]
    for w in weights:  # all singular values 1, not only the largest
        singular = torch.linalg.svdvals(w.detach())
        assert torch.allclose(singular, torch.ones_like(singular), atol=1e-4)


# --- accuracy ---------------------------------------------------------------------------------


def critic_value_on_fresh_rows(result, rho, dim, rows=100_000, seed=99):
    """E_p[T] − E_q[T] of the trained critic of an ``estimate`` result on fresh rows, in the
    views' units: the estimator's bias without the sampling noise of the held-out rows."""
    task = correlated_pair(rho, dim)

    def tensors(sample):
        return [torch.as_tensor(v, dtype=torch.float32) for v in result.transform_views(sample)]

    x, y = tensors(task.sample(rows, seed=seed))
    x2, y2 = tensors(task.sample(rows, seed=seed + 1))
    measure = result.measure.eval()
    with torch.no_grad():
        joint = measure.critic_scores(torch.cat([x, y], 1)).mean()
        product = measure.critic_scores(torch.cat([x2, y2.flip(0)], 1)).mean()
    return float(joint - product) * result.value_scale


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.3, 0.9])
def test_gradient_penalty_critic_is_within_seven_percent_of_exact_w1(rho):
    dim = 2
    data = correlated_pair(rho, dim).sample(4000, seed=0)
    result = mdmest.estimate(data, "wasserstein", steps=1000, seed=0, progress=False)
    truth = PAIR_W1[(rho, dim)]
    value = critic_value_on_fresh_rows(result, rho, dim)
    assert value == pytest.approx(truth, rel=0.07)


@pytest.mark.slow
def test_spectral_norm_critic_is_within_seven_percent_of_exact_w1():
    rho, dim = 0.9, 2  # where spectrally normalised layers read 10-12% low
    data = correlated_pair(rho, dim).sample(4000, seed=0)
    result = mdmest.estimate(
        data, "wasserstein", lipschitz="spectral_norm", steps=500, seed=0, progress=False
    )
    value = critic_value_on_fresh_rows(result, rho, dim)
    assert value == pytest.approx(PAIR_W1[(rho, dim)], rel=0.07)
    assert value <= PAIR_W1[(rho, dim)]  # exactly 1-Lipschitz: a lower bound up to sampling


def test_fit_common_scale_centres_and_shares_one_scale():
    rng = np.random.default_rng(0)
    views = [rng.normal(5.0, 3.0, (500, 2)), rng.normal(-1.0, 1.0, (500, 1))]
    maps = mdmest.transforms.fit_common_scale(views)
    mapped = [m.transform(v) for m, v in zip(maps, views)]
    assert maps[0].scale == maps[1].scale
    assert np.allclose([z.mean(axis=0) for z in mapped][0], 0.0, atol=1e-12)
    assert np.concatenate([z.var(axis=0) for z in mapped]).mean() == pytest.approx(1.0)
    assert mdmest.transforms.fit_common_scale([np.ones((4, 1)), np.ones((4, 2))])[0].scale == 1.0
    with pytest.raises(ValueError, match="expected rows of 2 features"):
        maps[0].transform(np.zeros((3, 1)))


def test_wasserstein_estimate_is_in_the_views_units_at_any_scale():
    # Untransformed, views scaled by 1e-3 read -72% and by 1e3 +187% (a critic whose inputs are
    # far from unit size); with the default common scale the value scales with the views.
    data = correlated_pair(0.6, 1).sample(3000, seed=0)
    values = {}
    for scale in (1e-3, 1.0, 1e3):
        result = mdmest.estimate(
            [v * scale for v in data], "wasserstein", steps=400, progress=False
        )
        assert result.transform == "scale" and result.value_scale == pytest.approx(scale, rel=0.1)
        values[scale] = result.value / scale
    # Equal up to float32 rounding, which 400 steps of training amplify (the measure's default
    # normalize="scale" centres and rescales every batch: 1.03e-3 apart at 1e3 once).
    assert values[1e-3] == pytest.approx(values[1.0], rel=3e-3)
    assert values[1e3] == pytest.approx(values[1.0], rel=3e-3)
    assert values[1.0] == pytest.approx(PAIR_W1[(0.6, 1)], rel=0.15)
    raw = mdmest.estimate(data, "wasserstein", transform=None, steps=5, progress=False)
    assert raw.transform is None and raw.transforms is None and raw.value_scale == 1.0
