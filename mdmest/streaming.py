"""A measure's bound over many batches, accumulated exactly (held-out evaluation, torchmetrics style).

``bound = measure.streaming()`` (or ``StreamingBound(measure)``), then ``bound.update(*views)`` for
every validation batch and ``bound.compute()`` for the bound over all of them; ``bound.reset()``
starts over. The critic is frozen (eval mode, no gradient); each update draws product rows within
its batch, scores them, and folds the batch's statistics into running ones.

The measure says what to keep, through three methods: ``statistic_reductions()`` names its
statistics and how each combines ("sum", "max" or "logsumexp"), ``batch_statistics(*views)`` gives
them for one batch, ``bound_from_statistics(...)`` the bound from their running values. For the DV
bound (:class:`~mdmest.TotalCorrelation`) they are the sum of the joint scores and the
log-sum-exp of the product scores, so ``compute()`` is
:math:`\\mathbb{E}_p[T] - \\log \\mathbb{E}_q[e^T]` over every row seen, not a mean of per-batch
bounds; for the f-divergences the sums of :math:`g_f(V)` and :math:`f^*(g_f(V))`; for Wasserstein
the sums of T, and with ``lipschitz_correction=True`` the largest gradient norm over every row; for
a :class:`~mdmest.DecomposedTotalCorrelation` those of each term.

Sums are kept in float64 (float32 on MPS). When a process group with more than one rank is
initialised, ``compute()`` reduces the statistics over its ranks (each rank updates with its own
batches), like torchmetrics' ``sync_on_compute``. Everything works under ``torch.inference_mode()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.distributed as dist

from mdmest._collective import is_distributed

__all__ = ["StreamingBound"]

#: How running statistics combine, and the value each starts from.
_REDUCTIONS = {"sum": 0.0, "max": -math.inf, "logsumexp": -math.inf}
_METHODS = ("statistic_reductions", "batch_statistics", "bound_from_statistics")

# -- the statistics of the usual bounds, for the measures' methods --------------------------------
#: A bound E_p[a(T)] − E_q[b(T)]: the sums of a and of b, and their row counts.
MEAN_FORM = {"joint_sum": "sum", "joint_rows": "sum", "product_sum": "sum", "product_rows": "sum"}
#: A bound E_p[a(T)] − log E_q[e^T]: the sum of a, the log-sum-exp of T, and their row counts.
LOG_MEAN_EXP_FORM = {**MEAN_FORM, "product_sum": "logsumexp"}


def accumulated(scores: torch.Tensor) -> torch.Tensor:
    """Scores in the dtype that statistics over many batches are kept in: float64 (float32 on
    MPS)."""
    return scores.to(torch.float32 if scores.device.type == "mps" else torch.float64)


def form_statistics(
    joint_terms: torch.Tensor, product_terms: torch.Tensor, *, log_mean_exp: bool = False
) -> dict[str, torch.Tensor]:
    """The :data:`MEAN_FORM` (or :data:`LOG_MEAN_EXP_FORM`) statistics of one batch from a(T) on
    its joint rows and b(T) (or T) on its product rows, in the dtype of :func:`accumulated`."""
    joint_terms, product_terms = accumulated(joint_terms), accumulated(product_terms)
    return {
        "joint_sum": joint_terms.sum(),
        "joint_rows": joint_terms.new_tensor(float(joint_terms.shape[0])),
        "product_sum": (
            torch.logsumexp(product_terms, dim=0) if log_mean_exp else product_terms.sum()
        ),
        "product_rows": product_terms.new_tensor(float(product_terms.shape[0])),
    }


def form_bound(statistics: Mapping[str, torch.Tensor], *, log_mean_exp: bool = False):
    """The bound from :data:`MEAN_FORM` (or :data:`LOG_MEAN_EXP_FORM`) statistics."""
    s = statistics
    if log_mean_exp:
        product_term = s["product_sum"] - torch.log(s["product_rows"])
    else:
        product_term = s["product_sum"] / s["product_rows"]
    return s["joint_sum"] / s["joint_rows"] - product_term


class StreamingBound:
    """The bound of ``measure`` over every batch passed to :meth:`update`.

    Parameters
    ----------
    measure : DependencyMeasure or DecomposedTotalCorrelation
        Its critic is used as it is (in eval mode, without gradient) at every update. Any object
        with the methods ``statistic_reductions``, ``batch_statistics`` and
        ``bound_from_statistics`` (see :meth:`mdmest.DependencyMeasure.statistic_reductions`).
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
        measure,
        *,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
        sync: bool = True,
        group=None,
    ) -> None:
        missing = [name for name in _METHODS if not callable(getattr(measure, name, None))]
        if missing:
            raise TypeError(
                "StreamingBound needs a measure with the methods " + ", ".join(_METHODS) + "; "
                f"{type(measure).__name__} lacks {', '.join(missing)}"
            )
        reductions = dict(measure.statistic_reductions())
        unknown = {name: how for name, how in reductions.items() if how not in _REDUCTIONS}
        if unknown:
            raise ValueError(
                f"statistic reductions must be among {tuple(_REDUCTIONS)}, got {unknown} "
                f"from {type(measure).__name__}"
            )
        self.measure = measure
        self.reductions = reductions
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
        # One running value per statistic, in the order of the measure's reductions, then the
        # joint rows seen.
        self._state = torch.tensor(
            [_REDUCTIONS[how] for how in self.reductions.values()] + [0.0],
            dtype=dtype,
            device=device,
        )
        self._generator = self._given_generator
        self._dtype: torch.dtype | None = None

    @property
    def rows(self) -> int:
        """Joint rows seen on this rank since the last reset."""
        return int(self._state[-1])

    # -- update and compute -----------------------------------------------------------------------
    def update(self, *views: torch.Tensor) -> None:
        """Score one batch of views (B, d_k) and fold its statistics into the running ones."""
        if self._generator is None and self.seed is not None and views:
            device = views[0].device if isinstance(views[0], torch.Tensor) else "cpu"
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        statistics = self.measure.batch_statistics(
            *views, negatives=self.negatives, generator=self._generator
        )
        state = self._state.to(views[0].device)
        batch = torch.stack([statistics[name].to(state.dtype) for name in self.reductions])
        updated = []
        for i, how in enumerate(self.reductions.values()):
            if how == "sum":
                updated.append(state[i] + batch[i])
            elif how == "max":
                updated.append(torch.maximum(state[i], batch[i]))
            else:
                updated.append(torch.logaddexp(state[i], batch[i]))
        updated.append(state[-1] + views[0].shape[0])
        self._state = torch.stack(updated)
        self._dtype = views[0].dtype

    def _reduced(self) -> torch.Tensor:
        """The running values over every rank (two all-reduces): sums add, maxima take the
        largest, log-sum-exps rescale to the largest and add."""
        state = self._state.clone()
        if not (self.sync and is_distributed(self.group)):
            return state
        how = list(self.reductions.values()) + ["sum"]
        maxed = torch.tensor([h != "sum" for h in how], device=state.device)
        logs = torch.tensor([h == "logsumexp" for h in how], device=state.device)
        maxima = torch.where(maxed, state, torch.full_like(state, -math.inf))
        dist.all_reduce(maxima, op=dist.ReduceOp.MAX, group=self.group)
        # Σ e^(v - max) of this rank, 0 where it has seen nothing (v = -inf).
        scaled = torch.where(
            torch.isneginf(state), torch.zeros_like(state), torch.exp(state - maxima)
        )
        sums = torch.where(logs, scaled, torch.where(maxed, torch.zeros_like(state), state))
        dist.all_reduce(sums, group=self.group)
        return torch.where(logs, maxima + torch.log(sums), torch.where(maxed, maxima, sums))

    def compute(self) -> torch.Tensor:
        """The bound over every batch since the last reset (over every rank's, when synced)."""
        state = self._reduced()
        if float(state[-1]) == 0:
            raise RuntimeError("compute() needs at least one update() since the last reset()")
        statistics = dict(zip(self.reductions, state))
        value = self.measure.bound_from_statistics(statistics)
        return value.to(self._dtype or torch.get_default_dtype())

    def __repr__(self) -> str:
        return f"StreamingBound({type(self.measure).__name__}, rows={self.rows})"
