"""Cross-rank product of marginals (mdmest.distributed): 2 gloo processes on the CPU give exactly the
loss and, after DDP's average over ranks, the gradients of one process on the concatenated batch."""

from __future__ import annotations

import functools
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mdmest import FTotalCorrelation, TotalCorrelation, WassersteinDependency
from mdmest import functional as Fn
from mdmest.critics import MLPCritic
from mdmest.distributed import CrossRankSampler, gather_rows
from mdmest.sampling import product_indices
from mdmest.streaming import StreamingBound

DIMS = (3, 2, 2)
SIZES = (7, 5)  # the global batch of 12, split unevenly over the 2 ranks
WORLD = len(SIZES)


def _critic():
    return MLPCritic(sum(DIMS), hidden=(16, 16), activation="tanh")


def _steep_critic():
    """Slopes above 1 at many points, so that the one-sided gradient penalty is not 0."""
    critic = _critic()
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(2.5)
    return critic


def _sampled_product_grad(measure, rows: int):
    """``measure`` taking the product side's gradient from ``rows`` rows drawn by weight."""
    measure.product_grad_rows = rows
    return measure


# name -> (constructor, whether the measure draws with the sampler's shared seed)
CASES = {
    "dv": (lambda: TotalCorrelation(DIMS, critic=_critic(), distributed=True), False),
    "dv_no_ema_2neg": (
        lambda: TotalCorrelation(DIMS, critic=_critic(), ema_decay=None, negatives=2,
                                 distributed=True), False),
    "dv_shared_seed": (
        lambda: TotalCorrelation(DIMS, critic=_critic(), sampler=CrossRankSampler(seed=5)), True),
    "f_kl": (lambda: FTotalCorrelation(DIMS, critic=_critic(), distributed=True), False),
    "f_js": (lambda: FTotalCorrelation(DIMS, divergence="js", critic=_critic(), distributed=True),
             False),
    "f_chi2_shifted": (
        lambda: FTotalCorrelation(DIMS, divergence="chi2", critic=_critic(),
                                  sampler=CrossRankSampler("shifted")), False),
    "w_gp_corrected": (
        lambda: WassersteinDependency(DIMS, critic=_steep_critic(), negatives=2,
                                      lipschitz_correction=True, distributed=True), False),
    "w_gp_two_sided_normalize": (
        lambda: WassersteinDependency(DIMS, critic=_critic(), one_sided_penalty=False,
                                      penalty_weight=1.0, normalize=True, distributed=True), False),
    # 24 product rows, the gradient from 5 (or 7) drawn: one draw on every rank, as in one process.
    "dv_sampled_product_grad": (
        lambda: _sampled_product_grad(TotalCorrelation(DIMS, critic=_critic(), negatives=2,
                                                       distributed=True), 5), False),
    "f_kl_sampled_product_grad_shared_seed": (
        lambda: _sampled_product_grad(FTotalCorrelation(DIMS, critic=_critic(), negatives=2,
                                                        sampler=CrossRankSampler(seed=9)), 7),
        True),
    "w_gp_shared_seed": (
        lambda: WassersteinDependency(DIMS, critic=_steep_critic(),
                                      sampler=CrossRankSampler(seed=7)),
        True),
}  # fmt: skip


def _data() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(sum(SIZES), 1, generator=g, dtype=torch.float64)
    return [
        shared + 0.7 * torch.randn(sum(SIZES), d, generator=g, dtype=torch.float64) for d in DIMS
    ]


def _rows(rank):
    start = sum(SIZES[:rank])
    return slice(start, start + SIZES[rank])


def _run_case(name: str, rank: int | None) -> dict:
    """Two SGD steps; rank None is one process on the concatenated batch."""
    make, shared_seed = CASES[name]
    torch.manual_seed(1)
    measure = make().double()
    if rank is None or not shared_seed:
        seed = measure.sampler.seed if shared_seed else 2
        measure.generator = torch.Generator().manual_seed(seed)
    full = _data()
    views = [(v if rank is None else v[_rows(rank)]).clone().requires_grad_(True) for v in full]
    params = list(measure.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05)
    out: dict = {"loss": [], "critic": [], "views": []}
    for _ in range(2):
        optimizer.zero_grad()
        for v in views:
            v.grad = None
        loss = measure(*views)
        loss.backward()
        grads = [p.grad.clone() for p in params]
        view_grads = [v.grad.clone() for v in views]
        if rank is not None:  # what DDP does: the mean over ranks
            for g in grads:
                dist.all_reduce(g)
                g /= WORLD
            view_grads = [g / WORLD for g in view_grads]
        out["loss"].append(loss.detach())
        out["critic"].append(grads)
        out["views"].append(view_grads)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
    out["cross_rank"] = isinstance(measure.sampler, CrossRankSampler) and measure.sampler.active()
    out["estimate"] = measure.estimate(*views, generator=3)
    out["estimate_negatives"] = measure.estimate(*views, negatives=3, generator=3)
    return out


STREAM_CASES = {
    "dv": lambda: TotalCorrelation(DIMS, critic=_critic()),
    "f_chi2": lambda: FTotalCorrelation(DIMS, divergence="chi2", critic=_critic()),
    "w_corrected": lambda: WassersteinDependency(DIMS, critic=_critic(), lipschitz_correction=True),
}


def _stream_batches(rank):
    full = [v[_rows(rank)] for v in _data()]
    return [tuple(v[:3] for v in full), tuple(v[3:] for v in full)]


def _stream(name: str, rank: int) -> torch.Tensor:
    torch.manual_seed(1)
    measure = STREAM_CASES[name]().double()
    bound = StreamingBound(measure, generator=100 + rank)
    with torch.inference_mode():
        for batch in _stream_batches(rank):
            bound.update(*batch)
        return bound.compute()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {name: _run_case(name, rank) for name in CASES}
        results["stream"] = {name: _stream(name, rank) for name in STREAM_CASES}
        x = torch.full((SIZES[rank], 2), float(rank + 1), requires_grad=True)
        gathered = gather_rows(x)
        (gathered * torch.arange(1.0, gathered.shape[0] + 1).unsqueeze(1)).sum().backward()
        results["gather"] = (gathered.detach(), x.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_worker, args=(init_file, tmp), nprocs=WORLD, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]


@functools.cache
def _reference(name):
    assert not dist.is_initialized()
    return _run_case(name, None)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_ranks_equal_one_process_on_the_concatenated_batch(ranks, name):
    ref = _reference(name)
    assert all(res[name]["cross_rank"] for res in ranks) and not ref["cross_rank"]
    for step in range(2):
        for rank, res in enumerate(ranks):
            _close(res[name]["loss"][step], ref["loss"][step])
            for g, g_ref in zip(res[name]["critic"][step], ref["critic"][step]):
                _close(g, g_ref)
            for g, g_ref in zip(res[name]["views"][step], ref["views"][step]):
                _close(g, g_ref[_rows(rank)])
    for key in ("estimate", "estimate_negatives"):
        for res in ranks:
            _close(res[name][key], ref[key])


def test_gather_rows_hands_each_rank_the_sum_of_gradients_of_its_rows(ranks):
    weights = torch.arange(1.0, sum(SIZES) + 1).unsqueeze(1).expand(-1, 2)
    for rank, res in enumerate(ranks):
        gathered, grad = res["gather"]
        assert gathered.shape == (sum(SIZES), 2)
        assert gathered[: SIZES[0]].eq(1).all() and gathered[SIZES[0] :].eq(2).all()
        _close(grad, WORLD * weights[_rows(rank)])


def _stream_reference(name):
    torch.manual_seed(1)
    measure = STREAM_CASES[name]().double()
    t_joint, t_product, slopes = [], [], []
    for rank in range(WORLD):
        generator = torch.Generator().manual_seed(100 + rank)
        for batch in _stream_batches(rank):
            with measure._evaluating(generator):
                tj, tp, joint, product = measure._joint_and_product(batch)
            t_joint.append(tj)
            t_product.append(tp)
            points = torch.cat([joint, product])
            slopes.append(Fn.lipschitz_constant(measure.critic_scores, points))
    value = measure.bound(torch.cat(t_joint), torch.cat(t_product))
    if name == "w_corrected":
        value = value / torch.stack(slopes).max().clamp(min=1.0)
    return value


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_streaming_reduces_over_ranks(ranks, name):
    expected = _stream_reference(name)
    for res in ranks:
        _close(res["stream"][name], expected)


def test_without_a_process_group_nothing_changes():
    assert not dist.is_initialized()
    views = _data()
    for distributed in (True, False):
        torch.manual_seed(1)
        wrapped = TotalCorrelation(DIMS, critic=_critic(), distributed=distributed).double()
        wrapped.generator = torch.Generator().manual_seed(2)
        loss = wrapped(*views)
        if distributed:
            assert isinstance(wrapped.sampler, CrossRankSampler) and not wrapped.sampler.active()
            first = loss
        else:
            assert wrapped.sampler is product_indices
            assert torch.equal(loss, first)
    sampler = CrossRankSampler()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(sampler(6, 3, 2, generator=g1), product_indices(6, 3, 2, generator=g2))


def test_the_sampler_copies_pickles_and_checks_its_group():
    import copy
    import pickle

    measure = TotalCorrelation(DIMS, distributed=True)
    for clone in (copy.deepcopy(measure), pickle.loads(pickle.dumps(measure))):
        assert isinstance(clone.sampler, CrossRankSampler)
        assert clone.sampler.base is product_indices
    with pytest.raises(TypeError, match="ProcessGroup"):
        TotalCorrelation(DIMS, distributed="yes")
