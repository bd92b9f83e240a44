"""DecomposedTotalCorrelation and estimate(decomposition=...): the chain rule, checked in closed form."""

import numpy as np
import pytest
import torch
from torch import nn

import mdmest
from mdmest.decomposition import DecomposedTotalCorrelation, split_views
from mdmest.tasks import gaussian_task_with_tc


class GaussianLogRatio(nn.Module):
    """x ↦ log N(x; 0, C) − Σ_g log N(x_g; 0, C_gg) for the blocks g of ``dims``: the exact critic."""

    def __init__(self, cov: np.ndarray, dims) -> None:
        super().__init__()
        cov = torch.as_tensor(cov, dtype=torch.float64)
        blocks = torch.split(torch.arange(cov.shape[0]), list(dims))
        precision = torch.linalg.inv(cov)
        for block in blocks:
            precision[block[:, None], block] -= torch.linalg.inv(cov[block[:, None], block])
        constant = sum(torch.logdet(cov[b[:, None], b]) for b in blocks) - torch.logdet(cov)
        self.register_buffer("precision", precision)
        self.register_buffer("constant", 0.5 * constant)

    def forward(self, x):
        x = x.double()
        return (self.constant - 0.5 * ((x @ self.precision) * x).sum(1)).float()


def _index(dims, views):
    starts = np.cumsum([0, *dims[:-1]])
    return np.concatenate([np.arange(starts[v], starts[v] + dims[v]) for v in views])


@pytest.mark.parametrize(
    ("num_views", "decomposition", "expected"),
    [
        (2, "tree", [((0,), (1,))]),
        (3, "tree", [((0,), (1, 2)), ((1,), (2,))]),
        (4, "tree", [((0, 1), (2, 3)), ((0,), (1,)), ((2,), (3,))]),
        (4, "chain", [((0,), (1,)), ((0, 1), (2,)), ((0, 1, 2), (3,))]),
    ],
)
def test_split_views(num_views, decomposition, expected):
    assert split_views(num_views, decomposition) == expected


@pytest.mark.parametrize("num_views", [2, 3, 5, 8])
@pytest.mark.parametrize("decomposition", ["tree", "chain"])
def test_every_split_joins_two_disjoint_groups_into_one(num_views, decomposition):
    splits = split_views(num_views, decomposition)
    assert len(splits) == num_views - 1
    for left, right in splits:
        assert left and right and not set(left) & set(right)
    # The chain rule's terms: the group (A ∪ B) of each split is a group of an earlier one or all.
    groups = {tuple(range(num_views))} | {g for split in splits for g in split}
    assert all(tuple(sorted(a + b)) in groups for a, b in splits)


@pytest.mark.parametrize("decomposition", ["tree", "chain"])
def test_exact_term_critics_add_up_to_the_exact_log_ratio(decomposition):
    dims = (2, 3, 1, 2)  # unequal widths: a wrong group order would show
    task = gaussian_task_with_tc(2.0, dims)
    views = [torch.as_tensor(v) for v in task.sample(40000, seed=4)]
    measure = DecomposedTotalCorrelation(dims, decomposition=decomposition)
    for term, (left, right) in zip(measure.terms, measure.splits):
        index = _index(dims, left + right)
        term_dims = [sum(dims[v] for v in group) for group in (left, right)]
        term.critic = GaussianLogRatio(task.cov[np.ix_(index, index)], term_dims)
    exact = GaussianLogRatio(task.cov, dims)(torch.cat(views, dim=1))
    torch.testing.assert_close(measure.scores(*views), exact, atol=1e-3, rtol=1e-4)
    measure.generator = torch.Generator().manual_seed(0)
    assert measure.estimate(*views, negatives=8).item() == pytest.approx(2.0, abs=0.05)


def test_loss_and_bound_are_the_sums_of_the_terms():
    torch.manual_seed(0)
    measure = DecomposedTotalCorrelation([3, 2, 4], negatives=2)
    views = [torch.randn(16, d) for d in (3, 2, 4)]
    loss = measure(*views)
    loss.backward()
    assert measure.last_bound == pytest.approx(sum(t.last_bound for t in measure.terms).item())
    assert all(t.critic.net[0].weight.grad is not None for t in measure.terms)
    assert [t.dims for t in measure.terms] == [(3, 6), (2, 4)]
    assert measure.negatives == 2
    measure.terms[1].negatives = 8
    assert measure.negatives == 8  # the most any term draws
    measure.negatives = 4
    assert [t.negatives for t in measure.terms] == [4, 4]


def test_bad_input_is_named():
    measure = DecomposedTotalCorrelation([2, 2, 2], names=["text", "audio", "video"])
    assert measure.terms[0].names == ("text", "audio+video")
    with pytest.raises(ValueError, match=r"view 2 \(audio\) has 3 features, dims\[1\] is 2"):
        measure(torch.randn(8, 2), torch.randn(8, 3), torch.randn(8, 2))
    with pytest.raises(TypeError, match="critic must be a callable in_features -> nn.Module"):
        DecomposedTotalCorrelation([2, 2], critic=nn.Linear(4, 1))
    with pytest.raises(ValueError, match="chain rule holds for the KL divergence only"):
        DecomposedTotalCorrelation([2, 2], measure="f", divergence="chi2")
    with pytest.raises(ValueError, match="decomposition"):
        DecomposedTotalCorrelation([2, 2], decomposition="star")


def test_estimate_checks_the_decomposition_option():
    views = gaussian_task_with_tc(0.5, (2, 2, 2)).sample(500)
    with pytest.raises(ValueError, match="unknown decomposition 'star'"):
        mdmest.estimate(views, decomposition="star", steps=2, progress=False)
    with pytest.raises(ValueError, match="decomposition needs a KL-type measure"):
        mdmest.estimate(views, "wasserstein", decomposition="tree", steps=2, progress=False)
    instance = mdmest.TotalCorrelation((2, 2, 2))
    with pytest.raises(TypeError, match="applies only when measure is given by name"):
        mdmest.estimate(views, instance, decomposition="tree", steps=2, progress=False)


@pytest.mark.slow
def test_tree_estimate_of_a_strong_three_view_dependency():
    task = gaussian_task_with_tc(3.0, (2, 2, 2))
    result = mdmest.estimate(
        task.sample(8000, seed=5),
        "dv",
        decomposition="tree",
        steps=1000,
        candidates=["critic"],
        progress=False,
    )
    assert isinstance(result.measure, DecomposedTotalCorrelation)
    assert result.value == pytest.approx(3.0, rel=0.1)


@pytest.mark.slow
def test_thorough_tries_the_alternative_its_first_value_points_to_and_chooses_on_validation():
    budget = dict(steps=300, batch_size=128, progress=False)

    def trained(result):  # the critics' test values (the bounds that need no training aside)
        return {k: v.test for k, v in result.candidates.items() if v.trained}

    def alone(views, **options):  # one critic, as the candidate trains it
        result = mdmest.estimate(views, "dv", candidates=["critic"], **budget, **options)
        return result.candidates["critic"].test

    def chosen_on_validation(result):
        validation = {k: v.validation for k, v in result.candidates.items()}
        return validation[result.chosen] == max(validation.values())

    weak = gaussian_task_with_tc(0.3, (2, 2, 2)).sample(3000, seed=6)
    thorough = mdmest.estimate(weak, "dv", thorough=True, **budget)
    # The refit of an overfit critic starts from nothing whatever the start of the first critic
    # (the default: nothing too; with EstimateConfig.mixture_max_components, a fitted mixture).
    scratch = mdmest.estimation.EstimateConfig(mixture_max_components=0)
    assert trained(thorough) == {
        "critic": alone(weak),
        "weight_decay": alone(weak, weight_decay=0.3, config=scratch),
    }
    assert chosen_on_validation(thorough)
    assert thorough.value == thorough.candidates[thorough.chosen].test
    strong = gaussian_task_with_tc(3.0, (2, 2, 2)).sample(3000, seed=6)
    thorough = mdmest.estimate(strong, "dv", thorough=True, **budget)
    assert thorough.candidates["critic"].validation >= 1.5  # so the tree is the alternative
    tree = alone(strong, decomposition="tree", weight_decay=0.3)
    assert trained(thorough) == {"critic": alone(strong), "tree_weight_decay": tree}
    assert chosen_on_validation(thorough)
    if thorough.chosen == "tree_weight_decay":
        assert isinstance(thorough.measure, DecomposedTotalCorrelation)
    # Two views at >= 1.5 nats: no alternative, one run.
    pair = gaussian_task_with_tc(3.0, (2, 2)).sample(3000, seed=6)
    assert trained(mdmest.estimate(pair, "dv", thorough=True, **budget)) == {"critic": alone(pair)}


def test_thorough_checks_its_arguments():
    views = gaussian_task_with_tc(0.5, (2, 2, 2)).sample(500)
    with pytest.raises(TypeError, match="thorough=True applies only when measure is given by name"):
        mdmest.estimate(views, mdmest.TotalCorrelation((2, 2, 2)), thorough=True, steps=2)
    with pytest.raises(ValueError, match="got 'f' with divergence 'js'"):
        mdmest.estimate(views, "f", divergence="js", thorough=True, steps=2)
    with pytest.raises(ValueError, match="got 'wasserstein'"):
        mdmest.estimate(views, "wasserstein", thorough=True, steps=2)
    with pytest.raises(ValueError, match="chooses the decomposition and the weight decay itself"):
        mdmest.estimate(views, thorough=True, decomposition="tree", steps=2)
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0, got -1"):
        mdmest.estimate(views, weight_decay=-1, steps=2)


def test_thorough_includes_the_refit_and_never_trains_its_alternative_twice():
    # 5000 rows: the default may refit; wide views at weak dependency overfit, and the refit's
    # weight decay 0.3 is thorough's alternative below 1.5 nats.
    views = gaussian_task_with_tc(0.5, (20, 20, 20)).sample(5000, seed=0)
    budget = dict(steps=300, progress=False)
    default = mdmest.estimate(views, "dv", **budget)
    thorough = mdmest.estimate(views, "dv", thorough=True, **budget)
    assert "weight_decay" in default.candidates
    assert thorough.candidates == default.candidates  # each run once, the weight decay one too
    assert thorough.value == default.value and thorough.chosen == default.chosen
