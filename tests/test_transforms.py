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
