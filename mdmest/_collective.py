"""Collectives of ``torch.distributed`` that put the global batch of a scoring step together.

The measures score the rows of one batch in one function (``DependencyMeasure._joint_and_product``);
:class:`RowShards` feeds it: in one process it hands the batch through unchanged, under a process
group it gathers every rank's rows, tells this rank which product columns of the global draw it
scores, and gathers the scores back. The public names are re-exported by :mod:`mdmest.distributed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = ["RowShards", "all_reduce_sum", "batch_sizes", "gather_rows", "is_distributed"]


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


def _share_bounds(total: int, world: int) -> list[int]:
    """Column boundaries of ``world`` contiguous, near-equal shares of ``total`` product rows."""
    base, extra = divmod(total, world)
    bounds = [0]
    for r in range(world):
        bounds.append(bounds[-1] + base + (1 if r < extra else 0))
    return bounds


class RowShards:
    """This process's part of one scoring step, and the collectives that join the parts.

    One scoring step draws ``total`` product columns (row indices into the batch) and scores them
    with the batch's joint rows. Across the ranks of ``group``, the batch is every rank's rows in
    rank order, each rank scores its own joint rows and a contiguous, near-equal share of the
    columns, and :meth:`gather_scores` joins the scores in the order one process gives on the
    concatenated batch. In one process (``group`` not given) each method hands its input through.

    Parameters
    ----------
    generator : torch.Generator, optional
        The generator every random draw of the step uses (product rows, the product-gradient rows,
        the penalty's ε); across ranks it must be seeded alike on every rank.
    group : ProcessGroup, optional
        The ranks that share the batch; ``None``: this process alone.
    across_ranks : bool
        Split the step over the ranks of ``group`` (the default group when ``group`` is ``None``).
    """

    def __init__(
        self, generator: torch.Generator | None = None, group=None, *, across_ranks: bool = False
    ) -> None:
        self.generator = generator
        self.group = group
        self.world = dist.get_world_size(group) if across_ranks else 1
        self.rank = dist.get_rank(group) if across_ranks else 0
        self.sizes: list[int] = []  # joint rows of every rank
        self.bounds: list[int] = []  # boundaries of every rank's product columns

    @classmethod
    def whole(cls, batch: int, total: int, generator: torch.Generator | None = None) -> RowShards:
        """One process that holds ``batch`` joint rows and scores all ``total`` product columns."""
        shards = cls(generator)
        shards.sizes, shards.bounds = [batch], [0, total]
        return shards

    # -- the batch -------------------------------------------------------------------------------
    def gather_views(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The views of the whole batch (differentiably: each rank gets its rows' gradients)."""
        if self.world == 1:
            self.sizes = [views[0].shape[0]]
            return list(views)
        local = torch.cat(list(views), dim=1)
        self.sizes = batch_sizes(local.shape[0], local.device, self.group)
        gathered = gather_rows(local, self.group, self.sizes)
        return list(gathered.split([v.shape[1] for v in views], dim=1))

    @property
    def batch(self) -> int:
        """Joint rows of the whole batch."""
        return sum(self.sizes)

    @property
    def rows(self) -> slice:
        """This rank's joint rows within the batch."""
        start = sum(self.sizes[: self.rank])
        return slice(start, start + self.sizes[self.rank])

    def take_columns(self, total: int) -> slice:
        """This rank's share of ``total`` product columns (all of them in one process)."""
        self.bounds = _share_bounds(total, self.world)
        return self.columns

    @property
    def columns(self) -> slice:
        """This rank's product columns within the step's draw (after :meth:`take_columns`)."""
        return slice(self.bounds[self.rank], self.bounds[self.rank + 1])

    @property
    def total(self) -> int:
        """Product columns of the step's draw, over every rank."""
        return self.bounds[-1]

    # -- the scores ------------------------------------------------------------------------------
    def gather_scores(
        self, t_joint: torch.Tensor, t_product: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scores of every rank's joint rows and product columns, differentiably (one
        all-gather for both)."""
        if self.world == 1:
            return t_joint, t_product
        shares = [b - a for a, b in zip(self.bounds, self.bounds[1:])]
        counts = [n + m for n, m in zip(self.sizes, shares)]
        parts = gather_rows(torch.cat([t_joint, t_product]), self.group, counts).split(counts)
        joint = torch.cat([p[:n] for p, n in zip(parts, self.sizes)])
        product = torch.cat([p[n:] for p, n in zip(parts, self.sizes)])
        return joint, product

    def gather_columns(self, t_product: torch.Tensor) -> torch.Tensor:
        """The values of every rank's product columns, in column order (no gradient)."""
        if self.world == 1:
            return t_product
        shares = [b - a for a, b in zip(self.bounds, self.bounds[1:])]
        with torch.no_grad():
            return gather_rows(t_product.detach(), self.group, shares)

    def mean_over_columns(self, mean: torch.Tensor) -> torch.Tensor:
        """The mean over every product column of a quantity whose mean over this rank's
        columns is ``mean`` (differentiably)."""
        if self.world == 1:
            return mean
        share = self.columns.stop - self.columns.start
        return all_reduce_sum(share * mean, self.group) / self.total

    def max(self, x: torch.Tensor) -> torch.Tensor:
        """The maximum of ``x`` over ranks (no gradient)."""
        if self.world == 1:
            return x
        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.MAX, group=self.group)
        return x
