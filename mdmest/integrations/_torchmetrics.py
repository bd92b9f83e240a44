"""A measure's held-out bound as a torchmetrics ``Metric`` (needs the ``torchmetrics`` package)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mdmest.streaming import StreamingBound

__all__ = ["StreamingBoundMetric"]


class StreamingBoundMetric(Metric):
    """The bound of ``measure`` over every batch passed to ``update`` since the last ``reset``.

    ``compute()`` is [`StreamingBound`][mdmest.streaming.StreamingBound]'s value over the batches,
    replayed one by one in the order they came, so it is exact (not a mean of per-batch bounds):
    for the DV bound, ``E_p[T] - log E_q[e^T]`` over every row. The critic is used as it is at
    ``compute`` time, in eval mode and without gradient.

    Each rank keeps the rows it was given (one state per view, and the batch sizes), declared
    with ``dist_reduce_fx="cat"``: torchmetrics gathers them over the processes before
    ``compute``, so under DDP every rank computes the bound over every rank's batches (rank 0's
    first), and with an int ``generator`` every rank gets the same value. The memory is that of the
    epoch's representations, as for torchmetrics' AUROC.

    Parameters
    ----------
    measure : TotalCorrelation, FTotalCorrelation or WassersteinDependency
        The trained measure; it is not registered as a submodule, so the metric adds no parameter
        to the module that holds it.
    negatives : int, optional
        Product rows per joint row (default: the measure's own).
    generator : int or torch.Generator or None
        Draws the product rows; an int (default 0) re-seeds at every ``compute``, so the same
        rows give the same value on every rank and at every call.
    **kwargs
        Options of ``torchmetrics.Metric`` (``sync_on_compute``, ``process_group``, ...).

    Examples
    --------
    >>> from mdmest import TotalCorrelation
    >>> measure = TotalCorrelation([2, 2])
    >>> metric = StreamingBoundMetric(measure)
    >>> for _ in range(3):
    ...     z = torch.randn(32, 2)
    ...     metric.update(z, z + 0.1 * torch.randn(32, 2))
    >>> metric.compute().shape
    torch.Size([])
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        measure: nn.Module,
        *,
        negatives: int | None = None,
        generator: int | torch.Generator | None = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        dims = getattr(measure, "dims", None)
        if not callable(getattr(measure, "streaming", None)) or dims is None:
            raise TypeError(
                "measure must be an mdmest measure with a streaming bound (TotalCorrelation, "
                f"FTotalCorrelation or WassersteinDependency); got {type(measure).__name__}"
            )
        # A plain attribute, not a submodule: the critic stays out of the holder's parameters.
        self.__dict__["measure"] = measure
        self.negatives = negatives
        self.generator = generator
        self.num_views = len(dims)
        for view in range(self.num_views):
            self.add_state(f"view_{view}", default=[], dist_reduce_fx="cat")
        self.add_state("batch_rows", default=[], dist_reduce_fx="cat")

    def update(self, *views: torch.Tensor) -> None:
        """Keep one batch of views, each of shape (B, d_k)."""
        if len(views) != self.num_views:
            raise ValueError(
                f"the measure has {self.num_views} views; update got {len(views)} tensors"
            )
        for view, z in enumerate(views):
            getattr(self, f"view_{view}").append(z.detach())
        rows = torch.tensor([views[0].shape[0]], device=views[0].device)
        self.batch_rows.append(rows)

    def compute(self) -> torch.Tensor:
        """The bound over every batch kept (every rank's, once torchmetrics has synced)."""
        # A list of per-batch tensors, or one tensor once torchmetrics has gathered the ranks'.
        if isinstance(self.batch_rows, list) and not self.batch_rows:
            raise RuntimeError("compute() needs at least one update() since the last reset()")
        rows = dim_zero_cat(self.batch_rows).tolist()
        views = [dim_zero_cat(getattr(self, f"view_{view}")) for view in range(self.num_views)]
        # The rows are already gathered: the bound itself must not reduce over the ranks again.
        bound = StreamingBound(
            self.measure, negatives=self.negatives, generator=self.generator, sync=False
        )
        for batch in zip(*(z.split(rows) for z in views)):
            bound.update(*batch)
        return bound.compute()
