"""StreamingBound: a measure's bound accumulated exactly over batches (the 2-rank reduction is in
tests/test_distributed.py)."""

from __future__ import annotations

import pytest
import torch

from mdmest import (
    DecomposedTotalCorrelation,
    DependencyMeasure,
    FTotalCorrelation,
    TotalCorrelation,
    WassersteinDependency,
)
from mdmest import functional as Fn
from mdmest.critics import MLPCritic
from mdmest.streaming import StreamingBound

DIMS = (3, 2, 2)


def _critic():
    return MLPCritic(sum(DIMS), hidden=(16, 16), activation="tanh")


MEASURES = {
    "dv": lambda: TotalCorrelation(DIMS, critic=_critic()),
    "f_kl": lambda: FTotalCorrelation(DIMS, critic=_critic()),
    "f_js": lambda: FTotalCorrelation(DIMS, divergence="js", critic=_critic()),
    "f_hellinger": lambda: FTotalCorrelation(DIMS, divergence="hellinger", critic=_critic()),
    "w": lambda: WassersteinDependency(DIMS, critic=_critic()),
    "w_corrected": lambda: WassersteinDependency(DIMS, critic=_critic(), lipschitz_correction=True),
}


def _measure(name, dtype=torch.float64):
    torch.manual_seed(0)
    measure = MEASURES[name]().to(dtype)
    with torch.no_grad():  # a steep critic: large scores, slopes above 1
        for p in measure.critic.parameters():
            p.mul_(3.0)
    return measure


def _views(rows, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(rows, 1, generator=g, dtype=dtype)
    return [shared + 0.5 * torch.randn(rows, d, generator=g, dtype=dtype) for d in DIMS]


@pytest.mark.parametrize("name", sorted(MEASURES))
@pytest.mark.parametrize("negatives", [None, 3])
def test_one_batch_equals_estimate(name, negatives):
    measure = _measure(name, torch.float32)
    views = _views(40, torch.float32)
    bound = measure.streaming(negatives=negatives, generator=5)
    bound.update(*views)
    expected = measure.estimate(*views, negatives=negatives, generator=5)
    torch.testing.assert_close(bound.compute(), expected, rtol=1e-5, atol=1e-5)
    assert bound.compute().dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_batches_equal_the_bound_over_the_union_of_their_scores(name):
    measure = _measure(name)
    views = _views(50)
    batches = list(zip(*(v.tensor_split(4) for v in views)))
    bound = StreamingBound(measure, generator=7)
    with torch.inference_mode():
        for batch in batches:
            bound.update(*batch)
        value = bound.compute()
    # The closed computation over the same product rows: the same generator, batch by batch.
    generator = torch.Generator().manual_seed(7)
    t_joint, t_product, slopes = [], [], []
    for batch in batches:
        with measure._evaluating(generator):
            tj, tp, joint, product = measure._joint_and_product(batch)
        t_joint.append(tj)
        t_product.append(tp)
        slopes.append(Fn.lipschitz_constant(measure.critic_scores, torch.cat([joint, product])))
    expected = measure.bound(torch.cat(t_joint), torch.cat(t_product))
    if name == "w_corrected":
        expected = expected / torch.stack(slopes).max().clamp(min=1.0)
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-10)
    assert bound.rows == 50


def test_dv_is_not_a_mean_of_per_batch_bounds():
    measure = _measure("dv")
    views = _views(60)
    batches = list(zip(*(v.tensor_split(3) for v in views)))
    bound = measure.streaming(generator=3)
    generator = torch.Generator().manual_seed(3)
    per_batch = []
    for batch in batches:
        bound.update(*batch)
    for batch in batches:
        per_batch.append(measure.estimate(*batch, generator=generator))
    assert abs(float(bound.compute()) - float(torch.stack(per_batch).mean())) > 1e-6


def test_reset_replays_and_the_measure_is_left_as_it_was():
    measure = _measure("dv").train()
    generator = measure.generator = torch.Generator().manual_seed(11)
    views = _views(30)
    bound = measure.streaming(generator=2)
    bound.update(*views)
    first = bound.compute()
    bound.reset()
    with pytest.raises(RuntimeError, match="update"):
        bound.compute()
    bound.update(*views)
    assert torch.equal(bound.compute(), first)
    assert measure.training and measure.generator is generator
    assert measure.critic.net[0].weight.grad is None


def test_inference_mode_then_normal_mode():
    measure = _measure("f_kl")
    views = _views(30)
    bound = measure.streaming(generator=2)
    with torch.inference_mode():
        bound.update(*views)
    bound.update(*views)  # states made under inference mode keep working outside it
    value = bound.compute()
    bound.reset()
    for _ in range(2):
        bound.update(*views)
    torch.testing.assert_close(bound.compute(), value)


def test_a_decomposed_measure_streams_the_sum_of_its_terms():
    torch.manual_seed(0)
    measure = DecomposedTotalCorrelation(DIMS, critic=lambda n: MLPCritic(n, hidden=(8,))).double()
    views = _views(40)
    one = measure.streaming(generator=4)
    one.update(*views)
    torch.testing.assert_close(one.compute(), measure.estimate(*views, generator=4))
    # Over batches: each term's bound over the union of its scores, added.
    batches = list(zip(*(v.tensor_split(2) for v in views)))
    bound = measure.streaming(generator=4)
    for batch in batches:
        bound.update(*batch)
    generator = torch.Generator().manual_seed(4)
    scores = {i: ([], []) for i in range(len(measure.terms))}
    for batch in batches:
        for i, (term, pair) in enumerate(zip(measure.terms, measure._term_views(batch))):
            with term._evaluating(generator):
                tj, tp, _, _ = term._joint_and_product(pair)
            scores[i][0].append(tj)
            scores[i][1].append(tp)
    expected = sum(
        term.bound(torch.cat(scores[i][0]), torch.cat(scores[i][1]))
        for i, term in enumerate(measure.terms)
    )
    torch.testing.assert_close(bound.compute(), expected, rtol=1e-10, atol=1e-10)


class _MeanGap(DependencyMeasure):
    """A measure of its own: E_p[T] - E_q[T], with the statistics it streams by."""

    def bound(self, t_joint, t_product):
        return t_joint.mean() - t_product.mean()


class _StreamedMeanGap(_MeanGap):
    def statistic_reductions(self):
        return {"joint": "sum", "product": "sum", "rows": "sum", "products": "sum"}

    def batch_statistics(self, *views, negatives=None, generator=None):
        with self._evaluating(generator, views):
            t_joint, t_product, _, _ = self._joint_and_product(views, negatives, local=True)
        one = torch.ones((), dtype=torch.float64)
        return {
            "joint": t_joint.double().sum(),
            "product": t_product.double().sum(),
            "rows": one * t_joint.shape[0],
            "products": one * t_product.shape[0],
        }

    def bound_from_statistics(self, s):
        return s["joint"] / s["rows"] - s["product"] / s["products"]


def test_streaming_asks_the_measure_not_its_class():
    torch.manual_seed(0)
    measure = _StreamedMeanGap(DIMS, critic=_critic()).double()
    views = _views(30)
    bound = StreamingBound(measure, generator=6)
    bound.update(*views)
    torch.testing.assert_close(bound.compute(), measure.estimate(*views, generator=6))
    with pytest.raises(TypeError, match="_MeanGap does not say how its bound accumulates"):
        StreamingBound(_MeanGap(DIMS))
    with pytest.raises(TypeError, match="StreamingBound needs a measure with the methods"):
        StreamingBound(torch.nn.Linear(2, 1))


def test_unsupported_measures_and_options():
    with pytest.raises(ValueError, match="quantile"):
        WassersteinDependency(DIMS, lipschitz_correction=0.9).streaming()
    with pytest.raises(TypeError, match="generator"):
        TotalCorrelation(DIMS).streaming(generator=1.5)
