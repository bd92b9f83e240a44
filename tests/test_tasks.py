"""Ground-truth tasks: each closed form against an independent Monte Carlo value, the transforms'
invertibility, the Gaussian families' requested TC, and the suite's contract."""

import numpy as np
import pytest
from scipy import special, stats

from mdmest.reference import gaussian_total_correlation
from mdmest.tasks import (
    TRANSFORMS,
    AdditiveNoiseTask,
    GaussianMixtureTask,
    GaussianTask,
    StudentTTask,
    Task,
    TransformedTask,
    additive_noise_mutual_information,
    correlated_pair,
    gaussian_task_with_tc,
    low_rank_gaussian_task,
    random_spectrum_gaussian_task,
    sparse_gaussian_task,
    spiral_transform,
    student_t_total_correlation,
    task_suite,
)


def _mc_check(values: np.ndarray, truth: float, sigmas: float = 4.0) -> None:
    """The Monte Carlo mean lies within ``sigmas`` standard errors of the closed form."""
    mean = values.mean()
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(mean - truth) < sigmas * se + 1e-3, (mean, truth, se)


# ------------------------------------------------------------------------------------- Student-t


def _student_log_ratio(views, dof, cov):
    """log p(x) − Σ_k log p_k(x_k) with scipy's multivariate_t densities."""
    x = np.concatenate([v.astype(np.float64) for v in views], axis=1)
    joint = stats.multivariate_t(np.zeros(len(cov)), cov, df=dof).logpdf(x)
    start, margins = 0, 0.0
    for v in views:
        b = slice(start, start + v.shape[1])
        margins = margins + stats.multivariate_t(np.zeros(v.shape[1]), cov[b, b], df=dof).logpdf(
            x[:, b]
        )
        start += v.shape[1]
    return joint - margins


@pytest.mark.parametrize(
    "dims, dof", [((1, 1), 1), ((2, 3), 3), ((1, 1, 1), 1), ((2, 1, 2), 3), ((1, 2, 1, 1), 2)]
)
def test_student_t_closed_form_matches_monte_carlo(dims, dof):
    task = StudentTTask(dims, dof)
    views = task.sample(20_000, seed=1)
    _mc_check(_student_log_ratio(views, dof, np.eye(sum(dims))), task.total_correlation)


def test_student_t_with_a_correlated_dispersion_adds_the_gaussian_tc():
    cov = correlated_pair(0.6, 2).cov
    task = StudentTTask((2, 2), 3, cov=cov)
    gauss = gaussian_total_correlation(cov, (2, 2))
    assert task.total_correlation == pytest.approx(
        gauss + StudentTTask((2, 2), 3).total_correlation
    )
    _mc_check(_student_log_ratio(task.sample(20_000, seed=2), 3, cov), task.total_correlation)


def test_student_t_values_match_the_bmi_benchmark_and_shrink_with_dof():
    # Sums of the multivariate-t entropy (Arellano-Valle, Contreras-Reyes & Genton 2013, Eq. 7).
    for dims, dof, mi in [((1, 1), 1, 0.2242), ((2, 2), 1, 0.4319), ((3, 3), 2, 0.2909)]:
        assert student_t_total_correlation(dims, dof) == pytest.approx(mi, abs=1e-4)
    assert student_t_total_correlation((5, 5), 2) == pytest.approx(0.4482, abs=1e-4)
    values = [student_t_total_correlation((2, 2), dof) for dof in (1, 2, 3, 5, 30, 1000)]
    assert all(a > b > 0 for a, b in zip(values, values[1:]))
    assert values[-1] < 1e-4  # ν → ∞: Gaussian with identity covariance, independent views


def test_student_t_sampling_shapes_determinism_and_errors():
    task = StudentTTask((2, 3, 1), 2)
    a, b = task.sample(100, seed=3), task.sample(100, seed=3)
    assert [v.shape for v in a] == [(100, 2), (100, 3), (100, 1)]
    assert all(v.dtype == np.float32 for v in a)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], task.sample(100, seed=4)[0])
    assert isinstance(task, Task) and task.mutual_information == task.total_correlation
    with pytest.raises(ValueError, match="dof"):
        StudentTTask((1, 1), 0)
    with pytest.raises(ValueError, match="positive definite"):
        StudentTTask((1, 1), 1, cov=np.ones((2, 2)))


# ------------------------------------------------------------------------------------ transforms


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_are_invertible(name):
    t = TRANSFORMS[name]
    x = np.random.default_rng(0).standard_normal((500, 3)) * 2
    assert np.allclose(t.inverse(t.forward(x)), x, atol=1e-9)
    if name == "spiral":
        assert np.allclose(np.linalg.norm(t.forward(x), axis=1), np.linalg.norm(x, axis=1))
        assert np.array_equal(t.forward(x[:, :1]), x[:, :1])  # one feature: unchanged
    else:  # elementwise and strictly increasing
        grid = np.linspace(-6, 6, 1001)[:, None]
        assert np.all(np.diff(t.forward(grid)[:, 0]) > 0)


def test_spiral_twists_by_the_norm_and_its_speed_is_a_parameter():
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = spiral_transform(0.5)(x)
    assert np.allclose(y, [[np.cos(0.5), np.sin(0.5)], [2 * np.cos(1.0), 2 * np.sin(1.0)]])
    assert spiral_transform(0.5).name == "spiral(speed=0.5)"


@pytest.mark.parametrize("dims", [(2, 2), (3, 2, 2), (2, 2, 2, 2)])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transformed_task_keeps_the_tc_and_inverts_to_the_base_sample(dims, name):
    base = gaussian_task_with_tc(1.0, dims)
    task = TransformedTask(base, name)
    assert task.total_correlation == base.total_correlation and task.dims == base.dims
    assert task.name == f"{name}({base.name})"
    views, base_views = task.sample(2000, seed=5), base.sample(2000, seed=5)
    assert [v.shape for v in views] == [(2000, d) for d in dims]
    assert all(v.dtype == np.float32 for v in views)
    for v, b in zip(views, base_views):
        back = task.transform.inverse(v.astype(np.float64))
        assert np.allclose(back, b, rtol=1e-4, atol=2e-3)  # float32 output; Φ is flat in its tails
        assert not np.allclose(v, b)


def test_transformed_student_t_and_errors():
    task = TransformedTask(StudentTTask((2, 2, 2), 2), "asinh")
    assert task.total_correlation == StudentTTask((2, 2, 2), 2).total_correlation
    assert np.isfinite(np.concatenate(task.sample(1000), axis=1)).all()
    with pytest.raises(ValueError, match="unknown transform 'cube'"):
        TransformedTask(task, "cube")


# ---------------------------------------------------------------------------- additive noise


def _trapezoid_log_density(y: np.ndarray, eps: float) -> np.ndarray:
    return np.log((np.minimum(y + eps, 1.0) - np.maximum(y - eps, 0.0)) / (2 * eps))


@pytest.mark.parametrize("dim, eps", [(1, 0.1), (1, 0.3), (1, 0.5), (2, 0.25)])
def test_additive_noise_matches_monte_carlo(dim, eps):
    task = AdditiveNoiseTask(dim, eps)
    x, y = (v.astype(np.float64) for v in task.sample(20_000, seed=6))
    assert np.all(np.abs(y - x) <= eps + 1e-6)
    # log p(y | x) = −dim·log 2ε on the support; log p(y) is the product of trapezoids
    values = -dim * np.log(2 * eps) - _trapezoid_log_density(y, eps).sum(axis=1)
    _mc_check(values, task.total_correlation)
    assert task.total_correlation == pytest.approx(dim * (eps - np.log(2 * eps)))


@pytest.mark.parametrize("eps", [0.0, -0.1, 0.51, 1.0])
def test_additive_noise_rejects_epsilon_outside_the_closed_form(eps):
    with pytest.raises(ValueError, match=r"epsilon must lie in \(0, 0.5\]"):
        AdditiveNoiseTask(1, eps)
    with pytest.raises(ValueError, match="epsilon"):
        additive_noise_mutual_information(eps)


# ---------------------------------------------------------------------------- Gaussian mixture


def _mixture_log_ratio(x, y, rho, shift, weight):
    """Independent implementation with scipy.stats."""
    comps = [(weight, shift, rho), (1 - weight, -shift, -rho)]
    joint = special.logsumexp(
        [
            np.log(w) + stats.multivariate_normal([m, m], [[1, r], [r, 1]]).logpdf(np.c_[x, y])
            for w, m, r in comps
        ],
        axis=0,
    )
    margin = lambda v: special.logsumexp(  # noqa: E731
        [np.log(w) + stats.norm(m, 1).logpdf(v) for w, m, _ in comps], axis=0
    )
    return joint - margin(x) - margin(y)


@pytest.mark.parametrize("rho, shift, weight", [(0.9, 0.0, 0.5), (0.7, 1.0, 0.5), (0.95, 0.5, 0.3)])
def test_gaussian_mixture_matches_monte_carlo(rho, shift, weight):
    task = GaussianMixtureTask(rho, shift, weight)
    assert task.integration_error < 1e-6
    x, y = (v[:, 0].astype(np.float64) for v in task.sample(20_000, seed=7))
    _mc_check(_mixture_log_ratio(x, y, rho, shift, weight), task.total_correlation)
    ours = task.pointwise_mi(x[:100], y[:100])
    assert np.allclose(ours, _mixture_log_ratio(x[:100], y[:100], rho, shift, weight))


def test_gaussian_mixture_integral_has_converged_and_is_uncorrelated():
    task = GaussianMixtureTask(0.9)
    finer = GaussianMixtureTask(0.9, grid_step=0.025)
    assert finer.total_correlation == pytest.approx(task.total_correlation, abs=1e-9)
    x, y = task.sample(20_000, seed=8)
    assert abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) < 0.03  # dependent yet uncorrelated
    assert 0.3 < task.total_correlation < 0.5


# --------------------------------------------------------------------------- Gaussian families

FAMILIES = {
    "low_rank": low_rank_gaussian_task,
    "random_spectrum": random_spectrum_gaussian_task,
    "sparse": sparse_gaussian_task,
}


@pytest.mark.parametrize("dims", [(5, 5), (1, 4), (3, 3, 3), (2, 4, 3), (2, 2, 2, 2)])
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("tc", [0.3, 1.0, 3.0])
def test_gaussian_families_hit_the_requested_tc(family, dims, tc):
    if family == "sparse" and min(dims) < 2:
        pytest.skip("strong=2 needs two features per view")
    task = FAMILIES[family](tc, dims)
    assert isinstance(task, GaussianTask)
    assert task.total_correlation == pytest.approx(tc, abs=1e-6)
    assert gaussian_total_correlation(task.cov, dims) == pytest.approx(tc, abs=1e-6)
    assert np.linalg.eigvalsh(task.cov)[0] > 0
    assert np.allclose(task.cov, task.cov.T)
    assert task.name.startswith(f"{family}_gaussian(tc=")


def test_gaussian_family_details():
    task = random_spectrum_gaussian_task(1.0, (4, 4), seed=3)
    for b in (slice(0, 4), slice(4, 8)):  # within-view spectra are those drawn
        eig = np.linalg.eigvalsh(task.cov[b, b])
        assert 0.1 - 1e-9 <= eig.min() and eig.max() <= 10 + 1e-9
    assert task.name == "random_spectrum_gaussian(tc=1, dims=(4, 4), seed=3)"
    low = low_rank_gaussian_task(1.0, (3, 3), rank=1, ridge=2.0)
    assert np.linalg.matrix_rank(low.cov - 2.0 * np.eye(6)) == 1
    sparse = sparse_gaussian_task(0.5, (4, 4), strong=2)
    assert np.count_nonzero(sparse.cov - np.eye(8)) == 4  # two cross-view pairs, both triangles
    # gaussian_task_with_tc is unchanged: components default to min(dims)
    assert np.array_equal(
        gaussian_task_with_tc(1.0, (3, 4)).cov, gaussian_task_with_tc(1.0, (3, 4), components=3).cov
    )
    assert low_rank_gaussian_task(0.0, (2, 2)).total_correlation == pytest.approx(0.0)
    with pytest.raises(ValueError, match="components"):
        sparse_gaussian_task(1.0, (1, 3), strong=2)
    with pytest.raises(ValueError, match="cannot reach"):
        low_rank_gaussian_task(5.0, (2, 2), rank=4)  # full rank: TC bounded as the scale grows


# ------------------------------------------------------------------------------------- the suite


def test_the_suite_is_well_formed():
    two, multi, everything = task_suite(2), task_suite("multi"), task_suite()
    assert len(two) == 20 and len(multi) == 9 and len(everything) == len(two) + len(multi)
    assert all(len(t.dims) == 2 for t in two) and all(len(t.dims) in (3, 4) for t in multi)
    assert {len(t.dims) for t in task_suite(3)} == {3} and {len(t.dims) for t in task_suite(4)} == {
        4
    }
    names = [t.name for t in everything]
    assert len(set(names)) == len(names)
    for task in everything:
        assert isinstance(task, Task) and isinstance(task.name, str)
        assert 0.1 <= task.total_correlation <= 4.0, task.name
        assert max(task.dims) <= 10
        views = task.sample(64, seed=0)
        assert [v.shape for v in views] == [(64, d) for d in task.dims], task.name
        assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in views), task.name
        assert np.array_equal(views[0], task.sample(64, seed=0)[0])
    with pytest.raises(ValueError, match="num_views"):
        task_suite(1)
