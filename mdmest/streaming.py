"""A measure's bound over many batches, accumulated exactly (held-out evaluation, torchmetrics style).

``bound = measure.streaming()`` (or ``StreamingBound(measure)``), then ``bound.update(*views)`` for
every validation batch and ``bound.compute()`` for the bound over all of them; ``bound.reset()``
starts over. The critic is frozen (eval mode, no gradient); each update draws product rows within
its batch, scores them, and folds the scores into running statistics:

* DV (:class:`~mdmest.TotalCorrelation`): the sum of the joint scores and the log-mean-exp of the
  product scores as a running maximum and a sum of exponentials rescaled to it, so ``compute()`` is
  :math:`\\mathbb{E}_p[T] - \\log \\mathbb{E}_q[e^T]` over every row seen, not a mean of per-batch
  bounds;
* f-divergences (:class:`~mdmest.FTotalCorrelation`): the sums of :math:`g_f(V)` and of
  :math:`f^*(g_f(V))`;
* Wasserstein (:class:`~mdmest.WassersteinDependency`): the sums of T, and with
  ``lipschitz_correction=True`` the largest gradient norm over every row.

Sums are kept in float64 (float32 on MPS). When a process group with more than one rank is
initialised, ``compute()`` reduces the statistics over its ranks (each rank updates with its own
batches), like torchmetrics' ``sync_on_compute``. Everything works under ``torch.inference_mode()``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from mdmest import functional as Fn
from mdmest._base import DependencyMeasure
from mdmest.distributed import is_distributed
from mdmest.measures import FTotalCorrelation, TotalCorrelation, WassersteinDependency

__all__ = ["StreamingBound"]


class StreamingBound:
    """The bound of ``measure`` over every batch passed to :meth:`update`.

    Parameters
    ----------
    measure : TotalCorrelation, FTotalCorrelation or WassersteinDependency
        Its critic is used as it is (in eval mode, without gradient) at every update.
    negatives : int, optional
        Product rows per joint row at each update (default: the measure's own).
    generator : torch.Generator or int, optional
        Draws the product rows; an int seeds a generator on the first batch's device, anew at every
        :meth:`reset`, so replaying the same batches gives the same value. Default: the measure's
        generator (torch's global one when that is ``None``).
    sync : bool
        Reduce the statistics over the ranks of ``group`` in :meth:`compute` when a process group
        with more than one rank is initialised (default ``True``).
    group : ProcessGroup, optional
        The ranks to reduce over (default: the default group).

    Examples
    --------
    >>> from mdmest import TotalCorrelation
    >>> measure = TotalCorrelation([2, 2])
    >>> bound = measure.streaming(generator=0)
    >>> with torch.inference_mode():
    ...     for _ in range(3):
    ...         bound.update(torch.randn(32, 2), torch.randn(32, 2))
    ...     value = bound.compute()
    >>> value.shape, bound.rows
    (torch.Size([]), 96)
    """

    def __init__(
        self,
        measure: DependencyMeasure,
        *,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
        sync: bool = True,
        group=None,
    ) -> None:
        if isinstance(measure, TotalCorrelation):
            self.kind = "dv"
        elif isinstance(measure, FTotalCorrelation):
            self.kind = "f"
        elif isinstance(measure, WassersteinDependency):
            self.kind = "wasserstein"
        else:
            raise TypeError(
                "StreamingBound accumulates the bounds of TotalCorrelation, FTotalCorrelation and "
                f"WassersteinDependency; got {type(measure).__name__}"
            )
        self.measure = measure
        self.negatives = negatives
        self.seed = generator if not isinstance(generator, torch.Generator) else None
        self._given_generator = generator if isinstance(generator, torch.Generator) else None
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise TypeError(
                f"generator must be a torch.Generator, an int or None, got {generator!r}"
            )
        self.sync = sync
        self.group = group
        self._slope_quantile = None
        if self.kind == "wasserstein" and measure.lipschitz == "gradient_penalty":
            quantile = measure._correction_quantile
            if quantile is not None and quantile != 1.0:
                raise ValueError(
                    "a quantile of the gradient norms cannot be accumulated exactly over batches; "
                    "use lipschitz_correction=True (the largest norm) or False"
                )
            self._slope_quantile = quantile
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    def _state_device(self) -> torch.device:
        for tensor in self.measure.parameters():
            return tensor.device
        for tensor in self.measure.buffers():
            return tensor.device
        return torch.device("cpu")

    def reset(self) -> None:
        """Forget every batch (and re-seed an int generator)."""
        device = self._state_device()
        dtype = torch.float32 if device.type == "mps" else torch.float64
        # [joint sum, joint rows, product sum (f, W) or Σ exp(T - max) (DV), product rows]
        self._sums = torch.zeros(4, dtype=dtype, device=device)
        # [max of the product scores (DV), largest gradient norm (W with the correction)]
        self._maxima = torch.full((2,), -math.inf, dtype=dtype, device=device)
        self._generator = self._given_generator
        self._dtype: torch.dtype | None = None

    @property
    def rows(self) -> int:
        """Joint rows seen on this rank since the last reset."""
        return int(self._sums[1])

    # -- update and compute -----------------------------------------------------------------------
    def update(self, *views: torch.Tensor) -> None:
        """Score one batch of views (B, d_k) and fold its scores into the statistics."""
        measure = self.measure
        if self._generator is None and self.seed is not None and views:
            device = views[0].device if isinstance(views[0], torch.Tensor) else "cpu"
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        with measure._evaluating(self._generator, views):
            t_joint, t_product, joint, product = measure._joint_and_product(
                views, self.negatives, local=True
            )
            slope = None
            if self._slope_quantile is not None:
                points = torch.cat([joint, product])
                slope = Fn.lipschitz_constant(measure.critic_scores, points, 1.0)
        self._dtype = t_joint.dtype
        sums, maxima = self._sums.to(t_joint.device), self._maxima.to(t_joint.device)
        t_joint, t_product = t_joint.to(sums.dtype), t_product.to(sums.dtype)
        joint_rows, product_rows = float(t_joint.shape[0]), float(t_product.shape[0])
        product_max, product_sum = maxima[0], sums[2]
        if self.kind == "f":
            joint_sum = Fn.f_activation(t_joint, measure.divergence).sum()
            conjugate = Fn._F_CONJUGATE_OF_ACTIVATION[measure.divergence]
            product_sum = product_sum + conjugate(t_product).sum()
        elif self.kind == "dv":
            joint_sum = t_joint.sum()
            # Σ e^(T - max) over every row so far, rescaled to the new maximum.
            product_max = torch.maximum(maxima[0], t_product.max())
            product_sum = (
                product_sum * torch.exp(maxima[0] - product_max)
                + torch.exp(t_product - product_max).sum()
            )
        else:
            joint_sum = t_joint.sum()
            product_sum = product_sum + t_product.sum()
        self._sums = torch.stack(
            [sums[0] + joint_sum, sums[1] + joint_rows, product_sum, sums[3] + product_rows]
        )
        slope_max = maxima[1] if slope is None else torch.maximum(maxima[1], slope.to(sums.dtype))
        self._maxima = torch.stack([product_max, slope_max])

    def _reduced(self) -> tuple[torch.Tensor, torch.Tensor]:
        sums, maxima = self._sums.clone(), self._maxima.clone()
        if not (self.sync and is_distributed(self.group)):
            return sums, maxima
        local_max = maxima[0].clone()
        dist.all_reduce(maxima, op=dist.ReduceOp.MAX, group=self.group)
        if self.kind == "dv":  # rescale this rank's Σ e^(T - max_r) to the global maximum
            scale = torch.exp(local_max - maxima[0])
            sums[2] = torch.where(sums[3] > 0, sums[2] * scale, torch.zeros_like(sums[2]))
        dist.all_reduce(sums, group=self.group)
        return sums, maxima

    def compute(self) -> torch.Tensor:
        """The bound over every batch since the last reset (over every rank's, when synced)."""
        sums, maxima = self._reduced()
        if float(sums[1]) == 0 or float(sums[3]) == 0:
            raise RuntimeError("compute() needs at least one update() since the last reset()")
        joint_mean = sums[0] / sums[1]
        if self.kind == "dv":
            value = joint_mean - (maxima[0] + torch.log(sums[2]) - torch.log(sums[3]))
        else:
            value = joint_mean - sums[2] / sums[3]
        if self._slope_quantile is not None:
            value = value / maxima[1].clamp(min=1.0)
        return value.to(self._dtype or torch.get_default_dtype())

    def __repr__(self) -> str:
        return f"StreamingBound({type(self.measure).__name__}, rows={self.rows})"
