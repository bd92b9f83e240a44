"""The base of every measure: views to joint and product-of-marginals rows, critic scores, bound.

:class:`DependencyMeasure` holds the parts that the measures of :mod:`mdmest.measures` share; import
it from there or from :mod:`mdmest`.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn

from mdmest import functional as Fn
from mdmest._collective import RowShards
from mdmest._validation import check_choice, check_dims, check_views
from mdmest.critics import MLPCritic
from mdmest.sampling import SAMPLERS, CrossRankSampler, product_indices
from mdmest.streaming import StreamingBound

__all__ = ["DependencyMeasure", "Sampler", "EVAL_CHUNK_ROWS"]

Sampler = Callable[..., torch.Tensor]

#: Product rows per critic call when an evaluation draws more negatives than training does.
EVAL_CHUNK_ROWS = 65_536


class Scored(NamedTuple):
    """What one scoring step gives: the critic's scores on the joint and product rows of the
    batch, the joint rows, the product rows scored here, and how the step was split."""

    t_joint: torch.Tensor
    t_product: torch.Tensor
    joint: torch.Tensor
    product: torch.Tensor
    shards: RowShards


def _as_names(names: Sequence[str] | None, dims: tuple[int, ...]) -> tuple[str, ...] | None:
    if names is not None and len(names) != len(dims):
        raise ValueError(f"names has {len(names)} entries, dims has {len(dims)}")
    return tuple(names) if names is not None else None


def _as_generator(generator, views: Sequence) -> torch.Generator | None:
    """A generator as given, or a fresh one seeded by an int on the device of ``views[0]``."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, numbers.Integral):
        raise TypeError(
            f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
        )
    device = views[0].device if views and isinstance(views[0], torch.Tensor) else "cpu"
    return torch.Generator(device=device).manual_seed(int(generator))


def _weighted_loss(measure: nn.Module, views: Sequence[torch.Tensor], weight: float):
    """``measure.loss``: value weight·L, gradient weight·∂L/∂z for the views and ∂L/∂θ for the
    critic; keeps the unweighted L as ``measure.last_loss``."""
    value = measure(*(Fn.scale_grad(view, weight) for view in views))
    measure.last_loss = value.detach()
    return value + (weight - 1.0) * value.detach()


def _as_negatives(value) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < 1:
        raise ValueError(f"negatives must be an int >= 1, got {value!r}")
    return int(value)


class DependencyMeasure(nn.Module):
    """Base class: a neural lower bound on the dependency among K views.

    Calling the module returns the loss to minimise (the negated bound plus any penalty), so adding
    ``weight * measure(z_1, ..., z_K)`` to a task loss trains the critic to tighten the bound and the
    encoders to raise the dependency. ``estimate`` gives the bound's value, ``scores`` the critic's
    value on each joint row.

    Parameters
    ----------
    dims : sequence of int
        Feature sizes (d_1, ..., d_K) of the K >= 2 views.
    critic : nn.Module, optional
        Maps (N, Σd_k) to (N,) or (N, 1). Default: :class:`~mdmest.critics.MLPCritic` with two hidden
        layers of 256.
    negatives : int
        Product-of-marginals rows per joint row (more lowers variance, costs linearly).
    sampler : str or callable, optional
        How product rows are drawn: "shuffle" (default, :func:`mdmest.sampling.product_indices`,
        independent per-view shuffles), "shifted" (:func:`mdmest.sampling.shifted_product_indices`,
        shuffles that never reuse a joint row in two views; better at large dependency), or any
        ``sampler(batch_size, num_views, negatives, generator=..., device=...)`` returning a (K, N)
        int64 index of product rows (e.g. one that draws across processes).
    names : sequence of str, optional
        Names of the views, used in error messages (e.g. ``("z_text", "z_audio", "z_video")``).
    check_finite : bool
        Check the views for NaN/Inf on every call (one reduction per view; on CUDA it synchronises).
    distributed : bool or ProcessGroup
        Draw product rows from the global batch of a process group (``True``: the default group;
        or the group itself): the sampler is wrapped in a
        :class:`~mdmest.distributed.CrossRankSampler`, and the bound is that of the global batch
        when a group of more than one rank is initialised (see docs/distributed.md). Without one,
        nothing changes.
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        critic: nn.Module | None = None,
        negatives: int = 1,
        sampler: str | Sampler | None = None,
        names: Sequence[str] | None = None,
        check_finite: bool = True,
        distributed=False,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.names = _as_names(names, self.dims)
        self.negatives = _as_negatives(negatives)
        self.critic = critic if critic is not None else self.default_critic(sum(self.dims))
        if isinstance(sampler, str):
            sampler = SAMPLERS[check_choice("sampler", sampler, tuple(SAMPLERS))]
        self.sampler = sampler if sampler is not None else product_indices
        if distributed is not False and distributed is not None:
            group = None if distributed is True else distributed
            self.sampler = CrossRankSampler(self.sampler, group=group)
        self.check_finite = check_finite
        self.generator: torch.Generator | None = None
        self.last_bound: torch.Tensor | None = None
        self.last_product_scores: torch.Tensor | None = None
        #: Scores are ``shrink * T + (1 - shrink) * null_score``: 1 is the critic itself, 0 a
        #: constant critic whose bound is exactly 0. :func:`mdmest.estimate` lowers it, with few
        #: rows, when the validation rows say the critic does not generalise.
        self.shrink = 1.0

    def default_critic(self, in_features: int) -> nn.Module:
        return MLPCritic(in_features)

    #: The constant score whose bound is 0 (for every measure here but the NWJ bound: any).
    null_score = 0.0

    #: With gradients on and more product rows than this, the product side's gradient comes from
    #: this many rows drawn by their weight in the bound (:meth:`_sampled_product_grad`; the value
    #: still from every row). ``None`` (default): every row. :func:`mdmest.estimate` sets it on
    #: the instance while it trains with adaptive negatives (``PRODUCT_GRAD_ROWS``). A class
    #: default, so measures pickled by releases without it still load and run.
    product_grad_rows: int | None = None

    # -- the parts subclasses define -------------------------------------------------------------
    def bound(self, t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
        """The bound's value from critic outputs on joint and product rows."""
        raise NotImplementedError

    def objective(
        self,
        t_joint: torch.Tensor,
        t_product: torch.Tensor,
        joint: torch.Tensor,
        product: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, bound); by default the loss is the negated bound."""
        bound = self.bound(t_joint, t_product)
        return -bound, bound

    # -- shared machinery ------------------------------------------------------------------------
    def prepare(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per-view preprocessing before the critic (identity here)."""
        return list(views)

    def critic_scores(self, x: torch.Tensor) -> torch.Tensor:
        out = self.critic(x)
        if out.dim() == 2 and out.shape[1] == 1:
            out = out.squeeze(1)
        if out.shape != x.shape[:1]:
            raise ValueError(
                f"the critic must map (N, {x.shape[1]}) to (N,) or (N, 1); "
                f"got output shape {tuple(out.shape)} for N={x.shape[0]}"
            )
        if self.shrink != 1.0:
            out = self.shrink * out + (1.0 - self.shrink) * self.null_score
        return out

    def _joint_and_product(
        self, views: Sequence[torch.Tensor], negatives: int | None = None, *, local: bool = False
    ):
        """Critic scores on the joint rows and on ``negatives`` product rows per joint row.

        Returns (t_joint, t_product, joint, product); see :meth:`_score`.
        """
        scored = self._score(views, negatives, local=local)
        return scored.t_joint, scored.t_product, scored.joint, scored.product

    def _score(
        self, views: Sequence[torch.Tensor], negatives: int | None = None, *, local: bool = False
    ) -> Scored:
        """The one scoring step: the sampler draws product-row indices, the critic scores them.

        With more negatives than the measure trains with (an evaluation), the product rows are
        scored in chunks and ``product`` holds only those among the first B, so memory stays
        bounded. With a :class:`~mdmest.distributed.CrossRankSampler` in an initialised process
        group (and not ``local``), :class:`~mdmest._collective.RowShards` feeds this step the
        global batch: the scores are those of one process on every rank's rows, ``joint`` the
        global joint rows and ``product`` this rank's product rows.
        """
        negatives = self.negatives if negatives is None else _as_negatives(negatives)
        check_views(views, self.dims, self.names, self.check_finite, self._critic_dtype())
        shards = self._row_shards(views[0].device, local)
        views = self.prepare(shards.gather_views(views))
        index = self.sampler(
            shards.batch, len(views), negatives, generator=shards.generator, device=views[0].device
        )
        mine = index[:, shards.take_columns(index.shape[1])]
        joint_all = torch.cat(views, dim=1)
        joint = joint_all[shards.rows]

        def rows(columns: torch.Tensor) -> torch.Tensor:
            return torch.cat([v.index_select(0, i) for v, i in zip(views, columns)], dim=1)

        if negatives <= self.negatives:
            product = rows(mine)
            grad_rows = self.product_grad_rows
            if grad_rows is not None and shards.total > grad_rows and torch.is_grad_enabled():
                t_joint, t_product = self._sampled_product_grad(joint, product, grad_rows, shards)
            else:
                # One critic call on both sets: half the kernel launches of two calls.
                scores = self.critic_scores(torch.cat([joint, product], dim=0))
                t_joint, t_product = scores[: joint.shape[0]], scores[joint.shape[0] :]
        else:
            chunks = mine.split(max(joint.shape[0], EVAL_CHUNK_ROWS), dim=1)
            t_product = torch.cat([self.critic_scores(rows(part)) for part in chunks])
            t_joint = self.critic_scores(joint)
            # Of the product rows, those among the first B columns of the whole draw.
            first = min(max(shards.batch - shards.columns.start, 0), mine.shape[1])
            product = rows(mine[:, :first])
        t_joint, t_product = shards.gather_scores(t_joint, t_product)
        return Scored(t_joint, t_product, joint_all, product, shards)

    def _row_shards(self, device: torch.device, local: bool) -> RowShards:
        """How this step's rows are split: across the ranks of the sampler's group when it is an
        active :class:`CrossRankSampler` (and not ``local``), else all in this process."""
        sampler = self.sampler
        if local or not (isinstance(sampler, CrossRankSampler) and sampler.active()):
            return RowShards(self.generator)
        generator = self.generator if self.generator is not None else sampler.generator(device)
        return RowShards(generator, sampler.group, across_ranks=True)

    def _sampled_product_grad(
        self, joint: torch.Tensor, product: torch.Tensor, rows: int, shards: RowShards
    ):
        """(t_joint, t_product) whose values are the critic's on every row and whose gradient on
        the product side comes from ``rows`` rows drawn with probability softmax(T).

        Every product row is scored without gradient; ``rows`` indices j are drawn with
        replacement from p = softmax(T) and each distinct row u, drawn c_u times, is scored again
        with gradient and enters as c_u (T_u − T_u.detach()) / (rows · p_u): zero in value, and a
        gradient Σ_u g_u c_u ∇T_u / (rows · p_u), unbiased for Σ_j g_j ∇T_j whatever the bound's
        gradient g on the product scores. For KL-type bounds g ∝ e^T = p, so each draw adds
        ∇T_u / rows: the draws follow the rows that carry the gradient. Across ranks p is that
        of every rank's product rows (the same draw on every rank), and each rank scores again
        the drawn rows among its own.
        """
        batch = joint.shape[0]
        with torch.no_grad():
            t_mine = self.critic_scores(product)
            p = torch.softmax(shards.gather_columns(t_mine).float(), dim=0)
            drawn = torch.multinomial(p, rows, replacement=True, generator=shards.generator)
            unique, counts = torch.unique(drawn, return_counts=True)
            weight = (counts / (rows * p[unique])).to(t_mine.dtype)
            columns = shards.columns  # the drawn rows scored here (all of them in one process)
            kept = (unique >= columns.start) & (unique < columns.stop)
            unique, weight = unique[kept] - columns.start, weight[kept]
        scores = self.critic_scores(torch.cat([joint, product.index_select(0, unique)], dim=0))
        t_drawn = scores[batch:]
        t_product = t_mine.index_add(0, unique, weight * (t_drawn - t_drawn.detach()))
        return scores[:batch], t_product

    def forward(self, *views: torch.Tensor) -> torch.Tensor:
        """The loss to minimise: the negated bound (plus penalties) on these views."""
        scored = self._score(views)
        t_product = scored.t_product
        # The objective may need the layout of the draw (the gradient penalty's pairing).
        self._shards = scored.shards
        try:
            loss, bound = self.objective(scored.t_joint, t_product, scored.joint, scored.product)
        finally:
            self._shards = None
        # The bound itself (without penalties) and the product-side scores, kept for logging and
        # for estimate()'s adaptive negatives at no extra cost.
        self.last_bound = bound.detach()
        self.last_product_scores = t_product.detach()
        return loss

    #: The split of the draw being scored, while :meth:`objective` runs (``None`` otherwise).
    _shards: RowShards | None = None

    #: The unweighted ``measure(...)`` of the last :meth:`loss` call (detached).
    last_loss: torch.Tensor | None = None

    def loss(self, *views: torch.Tensor, weight: float) -> torch.Tensor:
        """``weight * measure(*views)`` as a term of a task loss, with the critic's step free of
        ``weight``.

        Its value is ``weight`` times the measure's loss; its gradient is ``weight`` times that of
        the loss for the views (so for the encoders), and the gradient of the loss itself for the
        critic. With one optimiser over model and measure, the critic then takes the same step
        whatever the weight (also 0), in SGD as in Adam. ``last_loss`` keeps the unweighted value.

        Examples
        --------
        >>> from mdmest import TotalCorrelation
        >>> measure = TotalCorrelation([2, 2])
        >>> z = [torch.randn(16, 2, requires_grad=True) for _ in range(2)]
        >>> measure.loss(*z, weight=0.0).backward()  # the encoders get 0, the critic learns
        >>> bool(measure.critic.net[0].weight.grad.abs().sum() > 0), float(z[0].grad.abs().sum())
        (True, 0.0)
        """
        return _weighted_loss(self, views, weight)

    @contextlib.contextmanager
    def _evaluating(
        self, generator: torch.Generator | int | None = None, views: Sequence = ()
    ) -> Iterator[None]:
        """Eval mode and no gradient for the block. With ``generator``, the block's random draws
        come from it (an int seeds a fresh ``torch.Generator`` on the device of ``views[0]``);
        ``self.generator`` is restored afterwards. ``None`` keeps ``self.generator``."""
        generator = _as_generator(generator, views)
        was_training, saved = self.training, self.generator
        if generator is not None:
            self.generator = generator
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.generator = saved
            self.train(was_training)

    def estimate(
        self,
        *views: torch.Tensor,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """The bound's value on these views (critic in eval mode, no gradient).

        ``negatives`` sets how many product rows are drawn per joint row for this value (default:
        the measure's own). The product-side term (e.g. log E_q[e^T]) is an average over those
        rows, and with a strong dependency it is heavy-tailed: one draw of B rows can move the
        value by tenths of a nat. Many draws (e.g. ``negatives=64`` on a held-out set) average
        that noise away at the cost of forward passes only.

        ``generator`` draws the product rows: a ``torch.Generator``, or an int that seeds a
        fresh one on the views' device, so two calls with the same int give the same value
        exactly; ``None`` (default) uses ``self.generator`` (the global generator when that is
        ``None``). How much repeated calls vary with ``negatives``: see docs/results/core_measurements.md, section
        "The three measures".
        """
        with self._evaluating(generator, views):
            t_joint, t_product, _, _ = self._joint_and_product(views, negatives)
            return self.bound(t_joint, t_product)

    # -- the bound over many batches (mdmest.streaming) ---------------------------------------
    def statistic_reductions(self) -> dict[str, str]:
        """The statistics from which the bound over many batches follows exactly, by name, each
        with how it combines over batches and ranks: "sum", "max" or "logsumexp".

        :class:`~mdmest.streaming.StreamingBound` keeps one running value per name, folds in
        :meth:`batch_statistics` at every update and reads the value with
        :meth:`bound_from_statistics`. A measure whose bound is no function of such statistics
        raises ``TypeError`` (this base class does).
        """
        raise TypeError(self._no_statistics())

    def batch_statistics(
        self,
        *views: torch.Tensor,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The statistics (:meth:`statistic_reductions`) of one batch: 0-dim tensors in float64
        (float32 on MPS), from the critic frozen as in :meth:`estimate` and product rows drawn
        within this batch on this process (never across ranks)."""
        with self._evaluating(generator, views):
            return self._statistics(self._score(views, negatives, local=True))

    def _statistics(self, scored: Scored) -> dict[str, torch.Tensor]:
        raise TypeError(self._no_statistics())

    def bound_from_statistics(self, statistics: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The bound from statistics combined over batches (and ranks), named as in
        :meth:`statistic_reductions`."""
        raise TypeError(self._no_statistics())

    def _no_statistics(self) -> str:
        return (
            f"{type(self).__name__} does not say how its bound accumulates over batches "
            "(statistic_reductions, batch_statistics and bound_from_statistics)"
        )

    def streaming(self, **kwargs) -> StreamingBound:
        """A :class:`~mdmest.streaming.StreamingBound` of this measure: ``update(*views)`` over
        batches, ``compute()`` the bound over all of them (``kwargs``: its options)."""
        return StreamingBound(self, **kwargs)

    def scores(self, *views: torch.Tensor) -> torch.Tensor:
        """The critic's value on each joint row, shape (B,): high where the views agree."""
        with self._evaluating():
            check_views(views, self.dims, self.names, self.check_finite, self._critic_dtype())
            return self.critic_scores(torch.cat(self.prepare(views), dim=1))

    def _critic_dtype(self) -> torch.dtype | None:
        """The dtype of the critic's first floating parameter (``None`` without one)."""
        for parameter in self.critic.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
        return None

    def extra_repr(self) -> str:
        return f"dims={self.dims}, negatives={self.negatives}"
