r"""The total correlation as a sum of two-group mutual informations, one critic per term.

.. math:: \mathrm{TC}(x_{A \cup B}) = I(x_A; x_B) + \mathrm{TC}(x_A) + \mathrm{TC}(x_B)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from mdmest._base import _as_generator, _as_names, _as_negatives, _weighted_loss
from mdmest._validation import check_choice, check_dims, check_views
from mdmest.measures import KL_MEASURES, MEASURES
from mdmest.streaming import StreamingBound

__all__ = ["DecomposedTotalCorrelation", "split_views", "DECOMPOSITIONS"]

DECOMPOSITIONS = ("tree", "chain")


def split_views(num_views: int, decomposition: str = "tree") -> list[tuple[tuple[int, ...], ...]]:
    r"""The pairs (A, B) of view groups whose mutual informations add up to the total correlation.

    The chain rule of KL, :math:`\mathrm{TC}(x_{A \cup B}) = I(x_A; x_B) + \mathrm{TC}(x_A) +
    \mathrm{TC}(x_B)`, applied until every group is one view, gives K − 1 terms. "tree" halves the
    views each time (4 views: 12|34, 1|2, 3|4); "chain" adds one view at a time (1|2, 12|3, 123|4).

    Examples
    --------
    >>> split_views(4, "tree")
    [((0, 1), (2, 3)), ((0,), (1,)), ((2,), (3,))]
    >>> split_views(3, "chain")
    [((0,), (1,)), ((0, 1), (2,))]
    """
    check_choice("decomposition", decomposition, DECOMPOSITIONS)
    if num_views < 2:
        raise ValueError(f"need at least 2 views, got {num_views}")
    if decomposition == "chain":
        return [(tuple(range(k)), (k,)) for k in range(1, num_views)]
    pairs: list[tuple[tuple[int, ...], ...]] = []
    groups = [tuple(range(num_views))]
    while groups:
        group = groups.pop(0)
        if len(group) > 1:
            half = len(group) // 2
            pairs.append((group[:half], group[half:]))
            groups += [group[:half], group[half:]]
    return pairs


class DecomposedTotalCorrelation(nn.Module):
    r"""Total correlation as a sum of K − 1 two-group mutual informations, one critic each.

    .. math:: \mathrm{TC}(x^1, \dots, x^K) = \sum_{(A, B)} I(x^A; x^B)

    over the splits of :func:`split_views` (the chain rule of KL). Each term is a two-view KL
    measure (:class:`~mdmest.measures.TotalCorrelation` for "dv",
    :class:`~mdmest.measures.FTotalCorrelation` with the KL divergence for "f") on the
    concatenated groups, so a strong dependency is estimated as several smaller ones: a DV
    critic's difficulty grows with :math:`e^{\mathrm{TC}}`, and each term is far smaller than the
    whole. With weak dependency among wide views each term pays its own held-out shortfall, so
    there the one-critic measure is better (measured: see docs/benchmarks.md, section 3 "Accuracy
    ladder").

    The value, the loss and :meth:`scores` are sums over the terms; ``scores`` estimates
    :math:`\log p(x) / \prod_k p_k(x^k)` on each row like a one-critic measure's. Use it like any
    measure: the loss of a training step, ``estimate``, or :func:`mdmest.estimate` with
    ``decomposition=``.

    Parameters
    ----------
    dims : sequence of int
        Feature sizes (d_1, ..., d_K) of the K >= 2 views.
    decomposition : str
        "tree" (default) or "chain"; see :func:`split_views`.
    measure : str
        Each term's measure: "dv" (default) or "f" (with the KL divergence).
    critic : callable, optional
        ``critic(in_features) -> nn.Module``, called once per term; default: each measure's own.
    names : sequence of str, optional
        Names of the views, used in error messages.
    check_finite : bool
        Check the views for NaN/Inf on every call.
    **kwargs
        Passed to every term's measure (``negatives``, ``sampler``, ``ema_decay``, ...).

    Examples
    --------
    >>> measure = DecomposedTotalCorrelation([4, 4, 4])
    >>> [term.dims for term in measure.terms]
    [(4, 8), (4, 4)]
    >>> measure(*[torch.randn(32, 4) for _ in range(3)]).shape
    torch.Size([])
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        decomposition: str = "tree",
        measure: str = "dv",
        critic: Callable[[int], nn.Module] | None = None,
        names: Sequence[str] | None = None,
        check_finite: bool = True,
        **kwargs,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.names = _as_names(names, self.dims)
        if measure not in KL_MEASURES:
            raise ValueError(
                "decomposition needs a KL-type measure ('dv', or 'f' with the KL divergence), "
                f"got {measure!r}"
            )
        if kwargs.get("divergence", "kl") != "kl":
            raise ValueError(
                "the chain rule holds for the KL divergence only; got "
                f"divergence={kwargs['divergence']!r}"
            )
        if critic is not None and (isinstance(critic, nn.Module) or not callable(critic)):
            raise TypeError(
                "critic must be a callable in_features -> nn.Module (one critic per term), "
                f"got {type(critic).__name__}"
            )
        self.decomposition = decomposition
        self.splits = split_views(len(self.dims), decomposition)
        self.check_finite = check_finite
        terms = []
        for groups in self.splits:
            term_dims = [sum(self.dims[i] for i in group) for group in groups]
            term_critic = critic(sum(term_dims)) if critic is not None else None
            term_names = ["+".join(self._label(i) for i in group) for group in groups]
            terms.append(
                MEASURES[measure](
                    term_dims, critic=term_critic, names=term_names, check_finite=False, **kwargs
                )
            )
        self.terms = nn.ModuleList(terms)
        self.last_bound: torch.Tensor | None = None

    def _label(self, index: int) -> str:
        return self.names[index] if self.names else f"x{index + 1}"

    @property
    def generator(self) -> torch.Generator | None:
        return self.terms[0].generator

    @generator.setter
    def generator(self, value: torch.Generator | None) -> None:
        for term in self.terms:
            term.generator = value

    @property
    def negatives(self) -> int:
        """The most negatives any term draws (each term keeps its own ``negatives``)."""
        return max(term.negatives for term in self.terms)

    @negatives.setter
    def negatives(self, value: int) -> None:
        for term in self.terms:
            term.negatives = _as_negatives(value)

    def _term_views(self, views: Sequence[torch.Tensor]) -> Iterator[tuple[torch.Tensor, ...]]:
        check_views(views, self.dims, self.names, self.check_finite)
        for groups in self.splits:
            yield tuple(torch.cat([views[i] for i in group], dim=1) for group in groups)

    def forward(self, *views: torch.Tensor) -> torch.Tensor:
        """The loss to minimise: the sum of the terms' losses."""
        loss = sum(term(*pair) for term, pair in zip(self.terms, self._term_views(views)))
        self.last_bound = sum(term.last_bound for term in self.terms)
        return loss

    #: The unweighted ``measure(...)`` of the last :meth:`loss` call (detached).
    last_loss: torch.Tensor | None = None

    def loss(self, *views: torch.Tensor, weight: float) -> torch.Tensor:
        """``weight * measure(*views)`` with every term's critic stepping on the unweighted loss
        (see :meth:`~mdmest.measures.DependencyMeasure.loss`)."""
        return _weighted_loss(self, views, weight)

    def estimate(
        self,
        *views: torch.Tensor,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """The sum of the terms' bounds on these views (see
        :meth:`~mdmest.measures.DependencyMeasure.estimate`); one ``generator`` (an int seeds one)
        draws every term's product rows in turn."""
        generator = _as_generator(generator, views)
        pairs = self._term_views(views)
        return sum(
            term.estimate(*pair, negatives=negatives, generator=generator)
            for term, pair in zip(self.terms, pairs)
        )

    def statistic_reductions(self) -> dict[str, str]:
        """Each term's statistics (see
        :meth:`~mdmest.measures.DependencyMeasure.statistic_reductions`), named ``"<term>.<name>"``."""
        return {
            f"{i}.{name}": how
            for i, term in enumerate(self.terms)
            for name, how in term.statistic_reductions().items()
        }

    def batch_statistics(
        self,
        *views: torch.Tensor,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Each term's statistics of one batch; one ``generator`` draws every term's product rows
        in turn, as in :meth:`estimate`."""
        generator = _as_generator(generator, views)
        statistics = {}
        for i, (term, pair) in enumerate(zip(self.terms, self._term_views(views))):
            for name, value in term.batch_statistics(
                *pair, negatives=negatives, generator=generator
            ).items():
                statistics[f"{i}.{name}"] = value
        return statistics

    def bound_from_statistics(self, statistics: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The sum of the terms' bounds from their statistics."""
        return sum(
            term.bound_from_statistics(
                {name: statistics[f"{i}.{name}"] for name in term.statistic_reductions()}
            )
            for i, term in enumerate(self.terms)
        )

    def streaming(self, **kwargs) -> StreamingBound:
        """A :class:`~mdmest.streaming.StreamingBound` of this measure (``kwargs``: its options)."""
        return StreamingBound(self, **kwargs)

    def scores(self, *views: torch.Tensor) -> torch.Tensor:
        """The sum of the terms' critic values on each joint row, shape (B,)."""
        return sum(term.scores(*pair) for term, pair in zip(self.terms, self._term_views(views)))

    def extra_repr(self) -> str:
        return f"dims={self.dims}, decomposition={self.decomposition!r}"
