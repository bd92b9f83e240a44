import numpy as np
import pytest

from mdmest.reference import (
    block_slices,
    gaussian_mutual_information,
    gaussian_total_correlation,
    gaussian_w2_dependency,
    wasserstein_dependency,
)
from mdmest.tasks import correlated_pair, equicorrelation_tc, gaussian_task_with_tc


def test_block_slices_cut_concatenated_views_back_apart():
    views = [np.full((3, d), float(k)) for k, d in enumerate([2, 1, 3])]
    rows = np.concatenate(views, axis=1)
    assert [rows[:, b].tolist() for b in block_slices([2, 1, 3])] == [v.tolist() for v in views]


def test_pair_mi_matches_the_total_correlation_formula():
    for rho, d in [(0.3, 1), (0.8, 5), (0.99, 2)]:
        task = correlated_pair(rho, d)
        assert task.total_correlation == pytest.approx(gaussian_mutual_information(rho, d))
        assert task.mutual_information == task.total_correlation


def test_total_correlation_is_the_entropy_difference():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    cov = a @ a.T + 6 * np.eye(6)
    dims = (1, 2, 3)
    # TC = Σ H(x_k) − H(x); Gaussian entropy = ½ log det(2πe Σ)
    entropy = lambda c: 0.5 * np.linalg.slogdet(2 * np.pi * np.e * np.atleast_2d(c))[1]  # noqa: E731
    blocks = [slice(0, 1), slice(1, 3), slice(3, 6)]
    expected = sum(entropy(cov[b, b]) for b in blocks) - entropy(cov)
    assert gaussian_total_correlation(cov, dims) == pytest.approx(expected)
    assert gaussian_total_correlation(np.eye(6), dims) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "tc, dims", [(0.5, (3, 3)), (2.0, (4, 4, 4)), (8.0, (5, 5, 5, 5)), (1.0, (2, 5))]
)
def test_tasks_are_built_at_the_requested_tc(tc, dims):
    task = gaussian_task_with_tc(tc, dims)
    assert task.total_correlation == pytest.approx(tc, rel=1e-8)
    samples = task.sample(20000, seed=1)
    assert [s.shape for s in samples] == [(20000, d) for d in dims]
    empirical = np.cov(np.concatenate(samples, 1).T)
    assert gaussian_total_correlation(empirical, dims) == pytest.approx(tc, rel=0.05, abs=0.01)


def test_equicorrelation_formula_matches_the_determinant():
    task = gaussian_task_with_tc(3.0, (2, 2, 2))
    assert equicorrelation_tc(task.cov[0, 2], 3, 2) == pytest.approx(3.0)


def test_empirical_w1_matches_the_measured_reference_and_the_w2_bound():
    task = correlated_pair(0.8, 1)
    x, y = task.sample(2000, seed=0)
    w1 = wasserstein_dependency(x, y)
    assert 0.45 < w1 < 0.6  # about 0.528 at n = 2000
    assert w1 <= task.w2_dependency + 0.1
    independent = wasserstein_dependency(x, np.random.default_rng(1).standard_normal((2000, 1)))
    assert independent < 0.15  # the sample-size bias alone (about 0.089)
    sliced = wasserstein_dependency(x, y, method="sliced", seed=0)
    assert 0 < sliced < w1


def test_w2_closed_form_against_the_scalar_case():
    # two 1-d views with correlation rho: W2^2 = 2 + 2 - 2 tr(sqrtm(Σ)) with Σ_bd = I
    rho = 0.6
    cov = np.array([[1, rho], [rho, 1]])
    eig = np.linalg.eigvalsh(cov)
    assert gaussian_w2_dependency(cov, (1, 1)) == pytest.approx(np.sqrt(4 - 2 * np.sqrt(eig).sum()))


def test_bad_input():
    with pytest.raises(ValueError, match="rho must lie in"):
        correlated_pair(1.0, 2)
    with pytest.raises(ValueError, match="cov must be square of size sum"):
        gaussian_total_correlation(np.eye(3), (2, 2))
    with pytest.raises(ValueError, match="valid values are 'emd', 'sliced'"):
        wasserstein_dependency(np.zeros((4, 1)), np.zeros((4, 1)), method="sinkhorn")
    with pytest.raises(ValueError, match=r"view 2 must have shape \(4, d\)"):
        wasserstein_dependency(np.zeros((4, 1)), np.zeros((5, 1)))
