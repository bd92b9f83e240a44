import pytest
import torch

from mdmest.sampling import product_indices, product_of_marginals


def test_first_view_keeps_order_and_others_are_permutations():
    views = [torch.arange(10.0).unsqueeze(1) * (k + 1) for k in range(3)]
    product = product_of_marginals(*views, negatives=3)
    assert all(p.shape == (30, 1) for p in product)
    assert torch.equal(product[0][:, 0], views[0][:, 0].repeat(3))
    for k in (1, 2):
        for j in range(3):
            block = product[k][j * 10 : (j + 1) * 10, 0]
            assert sorted(block.tolist()) == sorted(views[k][:, 0].tolist())


def test_permutations_are_independent_across_views_and_negatives():
    index = product_indices(1000, 3, negatives=2, generator=torch.Generator().manual_seed(0))
    assert index.shape == (3, 2000)
    assert not torch.equal(index[1], index[2])
    assert not torch.equal(index[1, :1000], index[1, 1000:])
    # a uniform shuffle keeps about one fixed point on average, not many
    assert (index[1, :1000] == torch.arange(1000)).sum() < 10


def test_generator_makes_shuffles_reproducible():
    x, y = torch.randn(50, 2), torch.randn(50, 3)
    a = product_of_marginals(x, y, generator=torch.Generator().manual_seed(3))
    b = product_of_marginals(x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[1], b[1])


def test_shuffling_breaks_the_dependency():
    x = torch.randn(4000, 1)
    _, y_shuffled = product_of_marginals(x, x.clone())
    corr = torch.corrcoef(torch.cat([x, y_shuffled], 1).T)[0, 1]
    assert abs(corr) < 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 views"):
        product_of_marginals(torch.randn(4, 1))
    with pytest.raises(ValueError, match="negatives must be >= 1"):
        product_of_marginals(torch.randn(4, 1), torch.randn(4, 1), negatives=0)
