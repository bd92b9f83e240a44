"""The per-view maps estimate() fits on the training rows (mdmest.transforms)."""

import numpy as np
import pytest

from mdmest.transforms import GaussianCopula


def test_copula_gives_standard_normal_marginals_and_keeps_the_order():
    rng = np.random.default_rng(0)
    x = rng.standard_cauchy((5000, 3)) * [1.0, 1e6, 1e-6]
    z = GaussianCopula().fit(x).transform(x)
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(z.std(axis=0), 1.0, atol=0.01)
    for j in range(3):  # strictly increasing on the training rows
        order = np.argsort(x[:, j])
        assert np.all(np.diff(z[order, j]) > 0)


def test_ties_share_one_value_and_new_rows_are_interpolated_and_clamped():
    x = np.array([[0.0], [1.0], [1.0], [2.0], [3.0]])
    copula = GaussianCopula().fit(x)
    z = copula.transform(x)[:, 0]
    assert z[1] == z[2] and z[0] < z[1] < z[3] < z[4]
    new = copula.transform(np.array([[1.5], [-100.0], [100.0]]))[:, 0]
    assert z[1] < new[0] < z[3]
    assert new[1] == z[0] and new[2] == z[4]


def test_whitening_makes_the_training_rows_uncorrelated():
    rng = np.random.default_rng(1)
    mixing = rng.standard_normal((4, 4))
    x = rng.standard_normal((20000, 4)) @ mixing
    z = GaussianCopula(whiten=True).fit(x).transform(x)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(4), atol=0.01)
    # One feature, and more features than rows: the shrunk covariance stays invertible.
    assert np.isfinite(GaussianCopula(whiten=True).fit(x[:, :1]).transform(x[:, :1])).all()
    few = GaussianCopula(whiten=True).fit(x[:3])
    assert np.isfinite(few.transform(x[:10])).all()


def test_bad_use_is_named():
    with pytest.raises(RuntimeError, match="before fit"):
        GaussianCopula().transform(np.zeros((2, 2)))
    copula = GaussianCopula().fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="expected rows of 2 features, got shape"):
        copula.transform(np.zeros((4, 3)))


def test_radial_map_makes_an_elliptical_view_standard_normal_and_keeps_directions():
    from scipy import stats

    from mdmest.tasks import StudentTTask
    from mdmest.transforms import RadialGaussian

    # One random scale shared by 4 features (dof 1.5: no variance), odd units per feature.
    x = StudentTTask((4, 1), dof=1.5).sample(20000, seed=0)[0] * [1.0, 1e3, 1e-3, 5.0]
    radial = RadialGaussian().fit(x)
    z = radial.transform(x)
    radius = np.linalg.norm(z, axis=1)
    # The radii are those of a standard normal view of 4 features ...
    assert stats.kstest(radius, stats.chi(4).cdf).statistic < 0.01
    # ... and each row keeps its direction after the standardisation and whitening.
    w = ((x - radial.center) / radial.scale) @ radial.whitening
    cosine = np.sum(z * w, axis=1) / (radius * np.linalg.norm(w, axis=1))
    assert np.allclose(cosine, 1.0)
    # Strictly increasing in the radius on the training rows: invertible there.
    order = np.argsort(np.linalg.norm(w, axis=1))
    assert np.all(np.diff(radius[order]) > 0)
    # New rows: interpolated, clamped outside the training radii; one row of zeros stays 0.
    far = radial.transform(np.vstack([radial.center * 0 + 1e12, radial.center]))
    assert np.linalg.norm(far[0]) == pytest.approx(radial.knots[1][-1])
    assert np.all(far[1] == 0)


def test_radial_transform_reads_the_student_t_total_correlation():
    import mdmest
    from mdmest.tasks import StudentTTask

    task = StudentTTask((3, 3), dof=2)  # all of its dependency in the shared scale
    views = task.sample(4000, seed=0)
    result = mdmest.estimate(views, "dv", transform="radial", steps=300, progress=False)
    assert result.transform == "radial" and result.chosen != "gaussian_copula"
    # The Gaussian bound runs in a copula transform of its own and reads far less here.
    assert result.candidates["gaussian_copula"].validation < 0.5 * result.value
    assert abs(result.value - task.total_correlation) < 0.2 * task.total_correlation
    # What it feeds the critic is the map fitted on the training rows.
    mapped = result.transform_views(views)
    assert np.allclose(mapped[0].numpy(), result.transforms[0].transform(views[0]), atol=1e-5)


def test_a_candidate_in_its_own_transform_returns_its_measure_with_that_transform():
    import mdmest
    from mdmest.tasks import gaussian_task_with_tc

    # Gaussian views, a short critic (from nothing, not from the fitted mixture, which on these
    # views is the Gaussian itself): the Gaussian-copula bound is chosen, and it was fitted in a
    # whitened copula of the training rows while the critics saw the radial map.
    task = gaussian_task_with_tc(1.0, [3, 3])
    views = task.sample(6000, seed=0)
    config = mdmest.estimation.EstimateConfig(mixture_max_components=0)
    result = mdmest.estimate(
        views, "dv", transform="radial", steps=100, progress=False, config=config
    )
    assert result.chosen == "gaussian_copula"
    assert result.transform == "whitened_copula"
    assert all(isinstance(f, mdmest.transforms.GaussianCopula) for f in result.transforms)
    assert abs(result.value - 1.0) < 0.1
    # Its measure reads the rows mapped by the transform it returns, not the critics' one.
    test = [v[result.test_rows] for v in views]
    again = float(result.measure.estimate(*result.transform_views(test), negatives=64))
    assert again == pytest.approx(result.value, abs=0.05)


def test_radial_bad_use_is_named():
    from mdmest.transforms import RadialGaussian

    with pytest.raises(RuntimeError, match="before fit"):
        RadialGaussian().transform(np.zeros((3, 2)))
    radial = RadialGaussian().fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(ValueError, match="expected rows of 2 features, got shape"):
        radial.transform(np.zeros((3, 3)))


def test_tyler_shape_finds_the_dispersion_of_a_view_without_a_variance():
    from mdmest.transforms import _tyler_shape

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    dispersion = a @ a.T + 0.5 * np.eye(4)
    # Cauchy rows (Student-t, 1 degree of freedom) about 0 with that dispersion.
    g = rng.multivariate_normal(np.zeros(4), dispersion, size=20000)
    u = g / np.abs(rng.normal(size=(20000, 1)))
    shape = _tyler_shape(u)
    target = dispersion * 4 / np.trace(dispersion)
    assert np.trace(shape) == pytest.approx(4)
    assert np.abs(shape - target).max() < 0.05 * np.abs(target).max()
    # The sample covariance is ruled by a few of the largest rows.
    cov = np.cov(u, rowvar=False)
    assert np.abs(cov * 4 / np.trace(cov) - target).max() > 0.2 * np.abs(target).max()


def test_gaussian_misfit_is_small_for_normal_rows_only():
    from mdmest.transforms import gaussian_misfit

    rng = np.random.default_rng(0)
    assert gaussian_misfit(rng.normal(size=(5000, 3))) < 0.05
    assert gaussian_misfit(rng.uniform(-1.7, 1.7, size=(5000, 3))) > 0.1
    assert gaussian_misfit(rng.standard_t(2, size=(5000, 3))) > 0.1


@pytest.mark.filterwarnings("ignore:no candidate beat a constant critic")
def test_per_view_map_is_the_radial_one_for_an_elliptical_view_the_copula_otherwise():
    from scipy.special import ndtr

    import mdmest
    from mdmest.tasks import StudentTTask
    from mdmest.transforms import GaussianCopula, RadialGaussian, fit_per_view

    rng = np.random.default_rng(0)
    elliptical = StudentTTask((4, 1), dof=1.5).sample(5000, seed=0)[0]
    assert isinstance(fit_per_view(elliptical), RadialGaussian)
    # A Gaussian view with a monotone distortion of each feature: the copula undoes it.
    g = rng.normal(size=(5000, 3)) @ rng.normal(size=(3, 3))
    assert isinstance(fit_per_view(ndtr(g) ** 3), GaussianCopula)
    assert isinstance(fit_per_view(np.exp(rng.normal(size=(5000, 1)))), GaussianCopula)
    # estimate: each view gets its own map, and new rows go through the same ones.
    views = [elliptical, ndtr(g)]
    result = mdmest.estimate(
        views, "dv", transform="per_view", candidates=["critic"], steps=5, progress=False
    )
    assert result.transform == "per_view"
    assert [type(f) for f in result.transforms] == [RadialGaussian, GaussianCopula]
    mapped = result.transform_views(views)
    assert np.allclose(mapped[1].numpy(), result.transforms[1].transform(views[1]), atol=1e-5)


def test_a_few_gross_outliers_do_not_rule_the_radial_map():
    from mdmest.estimation.closed_forms import gaussian_bound
    from mdmest.tasks import gaussian_task_with_tc
    from mdmest.transforms import RadialGaussian

    views = gaussian_task_with_tc(1.0, [4, 4]).sample(10000, seed=0)
    views[0][np.random.default_rng(1).random(10000) < 0.001, 0] *= 1000.0  # about 10 rows
    maps = [RadialGaussian().fit(v[:8000]) for v in views]
    mapped = [m.transform(v) for m, v in zip(maps, views)]
    # The Gaussian bound fitted on the mapped rows still reads the 1 nat (a whitening by the
    # sample covariance, ruled by those rows, read 0.78).
    value, _ = gaussian_bound([z[:8000] for z in mapped], [z[8000:] for z in mapped])
    assert value == pytest.approx(1.0, abs=0.04)
