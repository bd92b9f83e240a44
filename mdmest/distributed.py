"""Cross-rank product of marginals: the measures on the global batch of a process group.

With data-parallel training (DDP) every rank holds a shard of the batch. A measure whose sampler is
a :class:`CrossRankSampler` (``TotalCorrelation(dims, distributed=True)``, or
``sampler=CrossRankSampler(...)``) then computes the bound of the *global* batch:

* every view is all-gathered across ranks, with an autograd-aware all-gather whose backward sums
  the gradients of all ranks and hands each rank the rows it owns;
* the sampler draws the product-of-marginals rows (indices, nothing more) from the global batch
  with one global permutation, the same on every rank (a generator seeded identically on every
  rank); each rank scores an equal, contiguous share of those rows, and its own joint rows;
* the critic's scores (one float per row) are all-gathered, so the unchanged bounds of
  :mod:`mdmest.functional` see exactly the scores of the global batch: the DV log-mean-exp, the f
  means and the Wasserstein means are those of the global batch, identical on every rank.

The scoring is the measure's own, one function for one process and for many
(``DependencyMeasure._score``); what differs under a process group is only what feeds it (the
collectives of ``mdmest._collective``). So every option of the step holds across ranks as in one
process: the sampled product gradient (``product_grad_rows``, used by ``estimate``'s adaptive
negatives), evaluation negatives scored in chunks, the gradient penalty's pairing and its ε.

Gradients follow the convention of DDP: every rank returns the same global loss and the gradient
that reaches a rank's rows and critic replica is ``world_size`` times its share, so the average
that DDP takes over ranks is exactly the gradient of one process on the concatenated batch.

Without an initialised process group (or with one rank) the sampler is its base sampler and the
measure computes exactly what it computes today. Nothing here is imported by the bounds
or the measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from mdmest._collective import all_reduce_sum, batch_sizes, gather_rows, is_distributed
from mdmest.sampling import CrossRankSampler

__all__ = [
    "all_reduce_mean_grads",
    "CrossRankSampler",
    "is_distributed",
    "gather_rows",
    "all_reduce_sum",
    "batch_sizes",
]


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
