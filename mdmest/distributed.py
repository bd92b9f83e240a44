"""Cross-rank product of marginals: the measures on the global batch of a process group.

With data-parallel training (DDP) every rank holds a shard of the batch. A measure whose sampler is
a :class:`CrossRankSampler` (``TotalCorrelation(dims, distributed=True)``, or
``sampler=CrossRankSampler(...)``) then computes the bound of the *global* batch:

* every view is all-gathered across ranks, with an autograd-aware all-gather whose backward sums
  the gradients of all ranks and hands each rank the rows it owns;
* the product-of-marginals rows are drawn from the global batch with one global permutation, the
  same on every rank (a generator seeded identically on every rank); each rank scores an equal,
  contiguous share of those rows, and its own joint rows;
* the critic's scores (one float per row) are all-gathered, so the unchanged bounds of
  :mod:`mdmest.functional` see exactly the scores of the global batch: the DV log-mean-exp, the f
  means and the Wasserstein means are those of the global batch, identical on every rank.

Gradients follow the convention of DDP: every rank returns the same global loss and the gradient
that reaches a rank's rows and critic replica is ``world_size`` times its share, so the average
that DDP takes over ranks is exactly the gradient of one process on the concatenated batch.

Without an initialised process group (or with one rank) the sampler is its base sampler and the
measure computes exactly what it computes today. Nothing here is imported by the bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from mdmest import functional as Fn
from mdmest.sampling import SAMPLERS, product_indices

__all__ = [
    "all_reduce_mean_grads",
    "CrossRankSampler",
    "is_distributed",
    "gather_rows",
    "all_reduce_sum",
    "batch_sizes",
]


def is_distributed(group=None) -> bool:
    """Whether a process group with more than one rank is initialised (``group`` or the default)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def batch_sizes(rows: int, device: torch.device, group=None) -> list[int]:
    """The number of rows of every rank (one all-gather of one int)."""
    world = dist.get_world_size(group)
    mine = torch.tensor([rows], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(sizes, mine, group=group)
    return [int(s) for s in torch.cat(sizes).tolist()]


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 with per-rank row counts; backward: sum over ranks, own rows back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: tuple[int, ...], group) -> torch.Tensor:
        rank, longest = dist.get_rank(group), max(sizes)
        ctx.sizes, ctx.group, ctx.rank, ctx.longest = sizes, group, rank, longest
        x = x.contiguous()
        if x.shape[0] < longest:
            x = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
        parts = [torch.empty_like(x) for _ in sizes]
        dist.all_gather(parts, x, group=group)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        sizes, longest = ctx.sizes, ctx.longest
        padded = grad.new_zeros((len(sizes), longest, *grad.shape[1:]))
        for r, part in enumerate(grad.split(list(sizes))):
            padded[r, : sizes[r]] = part
        if dist.get_backend(ctx.group) == dist.Backend.NCCL:
            out = grad.new_empty((longest, *grad.shape[1:]))
            dist.reduce_scatter_tensor(out, padded.flatten(0, 1), group=ctx.group)
        else:  # gloo has no reduce-scatter: all-reduce the (W, rows, ...) block, keep ours
            dist.all_reduce(padded, group=ctx.group)
            out = padded[ctx.rank]
        return out[: sizes[ctx.rank]], None, None


def gather_rows(x: torch.Tensor, group=None, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """The rows of ``x`` of every rank, in rank order, differentiably.

    The backward pass sums the gradients that every rank computed for the gathered tensor and
    returns to each rank those of its own rows (reduce-scatter on NCCL; an all-reduce on gloo,
    which has no reduce-scatter). ``sizes`` (rows per rank) saves the exchange of row counts.
    """
    if sizes is None:
        sizes = batch_sizes(x.shape[0], x.device, group)
    return _GatherRows.apply(x, tuple(sizes), group)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = x.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def all_reduce_sum(x: torch.Tensor, group=None) -> torch.Tensor:
    """The sum of ``x`` over ranks, differentiably (the backward pass sums the gradients too)."""
    return _AllReduceSum.apply(x, group)


def _shares(total: int, world: int) -> list[int]:
    """Column boundaries of ``world`` contiguous, near-equal shares of ``total`` product rows."""
    base, extra = divmod(total, world)
    bounds = [0]
    for r in range(world):
        bounds.append(bounds[-1] + base + (1 if r < extra else 0))
    return bounds


@dataclasses.dataclass(frozen=True)
class Shard:
    """Where this rank's product rows sit in the global draw of the last call."""

    start: int  # first global product column scored here
    stop: int  # one past the last
    batch: int  # global batch size
    total: int  # global number of product rows


class CrossRankSampler:
    """A sampler that draws product rows from the global batch of a process group.

    It fills a measure's ``sampler`` slot (``TotalCorrelation(dims, sampler=CrossRankSampler())``,
    or ``distributed=True``). As a plain sampler (called with the contract of
    :func:`mdmest.sampling.product_indices`) it is its ``base``; when a process group with more than
    one rank is initialised, the measure hands it the whole draw-and-score step
    (:meth:`joint_and_product`) and gets back the critic's scores of the global batch.

    Parameters
    ----------
    base : str or callable
        How product rows are drawn from the global batch: "shuffle" (default), "shifted", or any
        sampler with the contract of :func:`~mdmest.sampling.product_indices`.
    group : ProcessGroup, optional
        The ranks that share a batch (default: the default group).
    seed : int, optional
        Seed of the generator that draws the global permutation, identical on every rank. By
        default rank 0 draws one from torch's global generator and broadcasts it on first use.
        A generator the measure holds (``measure.generator``, or ``estimate(generator=...)``) takes
        precedence; it must then be seeded identically on every rank.
    """

    def __init__(
        self,
        base: str | Callable[..., torch.Tensor] | None = None,
        *,
        group=None,
        seed: int | None = None,
    ) -> None:
        if isinstance(base, str):
            if base not in SAMPLERS:
                raise ValueError(
                    f"base must be one of {tuple(SAMPLERS)} or a callable, got {base!r}"
                )
            base = SAMPLERS[base]
        if isinstance(base, CrossRankSampler):
            base = base.base
        self.base = base if base is not None else product_indices
        if group is not None and not isinstance(group, dist.ProcessGroup):
            raise TypeError(f"group must be a torch.distributed ProcessGroup, got {group!r}")
        self.group = group
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        #: Where this rank's product rows sat in the last global draw.
        self.last_shard: Shard | None = None

    def __repr__(self) -> str:
        name = getattr(self.base, "__name__", type(self.base).__name__)
        return f"CrossRankSampler(base={name}, seed={self.seed})"

    def __getstate__(self):
        # Generators are rebuilt from the seed; a process group does not pickle (the default
        # group is used after unpickling).
        return dict(self.__dict__, _generators={}, last_shard=None, group=None)

    def __deepcopy__(self, memo):
        copy = CrossRankSampler(self.base, group=self.group, seed=self.seed)
        memo[id(self)] = copy
        return copy

    # -- the plain sampler contract ---------------------------------------------------------------
    def __call__(
        self,
        batch_size: int,
        num_views: int,
        negatives: int = 1,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        return self.base(batch_size, num_views, negatives, generator=generator, device=device)

    def active(self) -> bool:
        """Whether a group with more than one rank is initialised (else this is ``base``)."""
        return is_distributed(self.group)

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator of the global permutation on ``device``, seeded alike on every rank."""
        key = str(device)
        if key not in self._generators:
            if self.seed is None:
                seed = [
                    int(torch.randint(0, 2**62, ())) if dist.get_rank(self.group) == 0 else None
                ]
                dist.broadcast_object_list(seed, group=self.group, group_src=0)
                self.seed = seed[0]
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    # -- the distributed step ---------------------------------------------------------------------
    def joint_and_product(self, measure, views: Sequence[torch.Tensor], negatives: int):
        """Critic scores on the global batch (the distributed form of the measure's step).

        Returns ``(t_joint, t_product, joint, product)``: the scores of every rank's joint rows and
        of the global product rows (identical on every rank, in the order one process would give on
        the concatenated batch), the *global* joint rows (for the gradient penalty's pairing) and
        this rank's product rows (when scored in chunks, those among the first B global ones).
        """
        from mdmest._base import EVAL_CHUNK_ROWS

        group = self.group
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        dims = [v.shape[1] for v in views]
        local = torch.cat(list(views), dim=1)
        sizes = batch_sizes(local.shape[0], local.device, group)
        # One gather for all views, then the measure's preprocessing on the global batch.
        global_views = measure.prepare(list(gather_rows(local, group, sizes).split(dims, dim=1)))
        batch, start = sum(sizes), sum(sizes[:rank])
        generator = measure.generator
        if generator is None:
            generator = self.generator(local.device)
        index = self.base(batch, len(views), negatives, generator=generator, device=local.device)
        bounds = _shares(index.shape[1], world)
        mine = index[:, bounds[rank] : bounds[rank + 1]]
        self.last_shard = Shard(bounds[rank], bounds[rank + 1], batch, index.shape[1])
        joint_global = torch.cat(global_views, dim=1)
        joint = joint_global[start : start + sizes[rank]]
        if negatives <= measure.negatives:
            product = torch.cat([v.index_select(0, i) for v, i in zip(global_views, mine)], dim=1)
            scores = measure.critic_scores(torch.cat([joint, product], dim=0))
        else:
            chunks = [
                torch.cat([v.index_select(0, i) for v, i in zip(global_views, part)], dim=1)
                for part in mine.split(max(sizes[rank], EVAL_CHUNK_ROWS), dim=1)
            ]
            # As in one process: of the product rows, return those of the first B global columns.
            first = min(max(batch - bounds[rank], 0), mine.shape[1])
            product = torch.cat(
                [v.index_select(0, i) for v, i in zip(global_views, mine[:, :first])], dim=1
            )
            scores = torch.cat(
                [measure.critic_scores(joint)] + [measure.critic_scores(c) for c in chunks]
            )
        counts = [sizes[r] + bounds[r + 1] - bounds[r] for r in range(world)]
        parts = gather_rows(scores, group, counts).split(counts)
        t_joint = torch.cat([p[: sizes[r]] for r, p in enumerate(parts)])
        t_product = torch.cat([p[sizes[r] :] for r, p in enumerate(parts)])
        return t_joint, t_product, joint_global, product

    def gradient_penalty(
        self,
        critic,
        joint: torch.Tensor,
        product: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        one_sided: bool = False,
    ) -> torch.Tensor:
        """The gradient penalty of the global batch, from this rank's share of its points.

        ``joint`` is the global joint rows and ``product`` this rank's product rows of the last
        :meth:`joint_and_product`. Each product row is paired with the joint row one process would
        pair it with, and its ε is that one process would draw (the draw of ε for all rows, from
        the same generator, sliced): the mean over ranks is the penalty on the concatenated batch.
        """
        shard = self.last_shard
        if shard is None or product.shape[0] != shard.stop - shard.start:
            raise RuntimeError("gradient_penalty needs the product rows of the last global draw")
        if generator is None:
            generator = self.generator(product.device)
        count = shard.stop - shard.start
        columns = torch.arange(shard.start, shard.stop, device=joint.device) % shard.batch
        eps = torch.rand(
            shard.total, 1, generator=generator, device=joint.device, dtype=joint.dtype
        )
        if count:
            local_sum = count * Fn.gradient_penalty(
                critic,
                joint.index_select(0, columns),
                product,
                one_sided=one_sided,
                eps=eps[shard.start : shard.stop],
            )
        else:  # more ranks than product rows: this one adds nothing
            local_sum = product.sum() * 0.0
        return all_reduce_sum(local_sum, self.group) / shard.total

    def reduce_max(self, x: torch.Tensor) -> torch.Tensor:
        """The maximum of ``x`` over ranks (no gradient)."""
        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.MAX, group=self.group)
        return x


def all_reduce_mean_grads(params: Sequence[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over ranks in one all-reduce (a missing one counts 0).

    What DDP does for a model, for parameters outside it (a measure's critic). Without an
    initialised process group of more than one rank it does nothing.
    """
    if not is_distributed() or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for p, part in zip(params, flat.split([g.numel() for g in grads])):
        p.grad = part.view_as(p).clone()
