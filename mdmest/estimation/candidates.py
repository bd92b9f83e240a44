"""The candidates of ``mdmest.estimate``: each a name, the condition under which it runs and how
it runs; the default and ``thorough`` policies are lists of them.

A condition reads only the prepared rows' shapes and options and the outcomes before it, whose
values are on the validation rows: nothing here reads the test rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mdmest.estimation.closed_forms import gaussian_measure, size_bound
from mdmest.estimation.protocol import Outcome, Prepared, measure_outcome, train_critic
from mdmest.estimation.recipes import _noise_floor, overfits, still_rising
from mdmest.transforms import COPULA_TRANSFORMS, INVARIANT_TRANSFORMS

__all__ = [
    "Candidate",
    "CANDIDATES",
    "DEFAULT",
    "THOROUGH",
    "resolve_candidates",
]

Done = dict[str, Outcome]


@dataclass(frozen=True)
class Candidate:
    """One way to produce a value: ``applies(data, done)`` says whether it runs, given the
    prepared rows and the outcomes so far (valued on the validation rows); ``run(data, done)``
    returns its :class:`~mdmest.estimation.protocol.Outcome`, or ``None`` where it cannot give
    a value on these rows (a singular covariance, too few rows)."""

    name: str
    applies: Callable[[Prepared, Done], bool]
    run: Callable[[Prepared, Done], Outcome | None]
    description: str = ""


# -- conditions ------------------------------------------------------------------------------------
def _always(data: Prepared, done: Done) -> bool:
    return True


def _refits(data: Prepared, done: Done) -> bool:
    """A KL-type measure by name, no weight decay of the caller's, rows enough to refit, and a
    critic that overfits (its validation value far below its final training bound)."""
    critic = done.get("critic")
    return (
        critic is not None
        and data.kl_by_name
        and not data.options["weight_decay"]
        and data.num_rows >= data.config.refit_min_rows
        and overfits(critic.train_bound, *critic.validation, data.config)
    )


def _strong(data: Prepared, done: Done) -> bool:
    """With three or more views, a first value of at least ``config.split_nats``: the tree's terms
    are each a weaker dependency than the whole."""
    return data.num_views >= 3 and done["critic"].validation[0] >= data.config.split_nats


def _weight_decay_refit(data: Prepared, done: Done) -> bool:
    return _refits(data, done) and (
        data.options["decomposition"] is not None or not _strong(data, done)
    )


def _tree_refit(data: Prepared, done: Done) -> bool:
    return _refits(data, done) and data.options["decomposition"] is None and _strong(data, done)


def _strong_weight_decay(data: Prepared, done: Done) -> bool:
    decayed = done.get("weight_decay")
    return decayed is not None and overfits(decayed.train_bound, *decayed.validation, data.config)


def _extends(data: Prepared, done: Done) -> bool:
    critic = done.get("critic")
    return (
        critic is not None
        and data.kl_by_name
        and data.num_rows >= data.config.refit_min_rows
        and still_rising(critic.history, *critic.validation, data.config)
    )


def _fits(data: Prepared, done: Done) -> bool:
    """The recipe's plain critic (no critic or decomposition of the caller's), rows enough to
    refit, and a first critic that learned something (its validation value above three standard
    errors and ``config.refit_gap_nats``) without overfitting (that value within the noise of its
    training bound): a critic of more capacity may fit more of the dependency."""
    critic = done.get("critic")
    if critic is None:
        return False
    value, stderr = critic.validation
    return (
        data.kl_by_name
        and "critic" not in data.measure_kwargs
        and data.options["decomposition"] is None
        and data.num_rows >= data.config.refit_min_rows
        and value > _noise_floor(stderr, data.config)
        and not overfits(critic.train_bound, value, stderr, data.config)
    )


def _thorough_weight_decay(data: Prepared, done: Done) -> bool:
    """Below ``config.split_nats`` (any number of views): weight decay helps weak dependency; two
    views above it have no alternative."""
    weak = done["critic"].validation[0] < data.config.split_nats
    return data.kl_by_name and "weight_decay" not in done and weak


def _thorough_tree(data: Prepared, done: Done) -> bool:
    return data.kl_by_name and "tree_weight_decay" not in done and _strong(data, done)


def _closed_form(data: Prepared, done: Done) -> bool:
    rows = min(len(data.parts["validation"][0]), len(data.parts["test"][0]))
    return data.kl_by_name and rows >= data.config.closed_form_min_rows


def _in_copula(data: Prepared, done: Done) -> bool:
    """A transform that leaves the dependency unchanged (the copulas or the radial map): the
    Gaussian is then fitted in a copula transform of its own."""
    return _closed_form(data, done) and data.transform in INVARIANT_TRANSFORMS


# -- runs ------------------------------------------------------------------------------------------
def _critic(data: Prepared, done: Done) -> Outcome:
    return train_critic(data, "critic")


def _decayed(name: str, tree: bool = False, strong: bool = False):
    def run(data: Prepared, done: Done) -> Outcome:
        config = data.config
        decay = config.refit_strong_weight_decay if strong else config.refit_weight_decay
        # A refit of an overfit critic starts from nothing: the mixture, fitted to the same
        # training rows, is overfit with it.
        return train_critic(
            data, name, weight_decay=decay, decomposition="tree" if tree else None, mixture=False
        )

    return run


def _deeper(data: Prepared, done: Done) -> Outcome:
    # From nothing, also where the first critic started from the fitted mixture: the
    # validation rows then choose between the two starts at no extra training.
    return train_critic(data, "deeper", deep=True, mixture=False)


def _extended(data: Prepared, done: Done) -> Outcome:
    return train_critic(
        data, "extended", start_from=done["critic"], lr_factor=data.config.extend_lr_factor
    )


def _size_bound(data: Prepared, done: Done) -> Outcome | None:
    def score(part: str) -> tuple[float, float]:
        return size_bound(data.rows(part), data.seed, data.config)

    validation = score("validation")
    if validation[0] != validation[0]:  # NaN: the sizes are not continuous
        return None
    return Outcome("size_bound", validation, score)


def _gaussian_copula(data: Prepared, done: Done) -> Outcome | None:
    if data.transform not in COPULA_TRANSFORMS:
        data = data.in_transform("whitened_copula")
    measure = gaussian_measure(data.rows("train"), data.seed)
    if measure is None:
        return None
    return measure_outcome(data, "gaussian_copula", measure.to(data.device))


# -- the declared candidates and policies ----------------------------------------------------------
CRITIC = Candidate(
    "critic", _always, _critic, "the measure asked for, its critic trained on the training rows"
)
EXTENDED = Candidate(
    "extended", _extends, _extended, "the critic trained as long again where it was still learning"
)
DEEPER = Candidate(
    "deeper",
    _fits,
    _deeper,
    "a critic that fits without overfitting trained again with more capacity (residual blocks)",
)
WEIGHT_DECAY = Candidate(
    "weight_decay",
    _weight_decay_refit,
    _decayed("weight_decay"),
    "an overfit critic trained again with weight decay",
)
TREE = Candidate(
    "tree_weight_decay",
    _tree_refit,
    _decayed("tree_weight_decay", tree=True),
    "strong dependency among 3+ views: the TC as a tree of two-group terms, with weight decay",
)
STRONG_WEIGHT_DECAY = Candidate(
    "strong_weight_decay",
    _strong_weight_decay,
    _decayed("strong_weight_decay", strong=True),
    "weight decay overfit too: a stronger one",
)
SIZE_BOUND = Candidate(
    "size_bound", _closed_form, _size_bound, "the bound from the views' sizes alone (no training)"
)
GAUSSIAN_COPULA = Candidate(
    "gaussian_copula",
    _in_copula,
    _gaussian_copula,
    "the DV bound of a Gaussian fitted in the copula transform (no training)",
)
THOROUGH_WEIGHT_DECAY = Candidate(
    "weight_decay",
    _thorough_weight_decay,
    _decayed("weight_decay"),
    "the critic with weight decay, whatever the first run showed",
)
THOROUGH_TREE = Candidate(
    "tree_weight_decay",
    _thorough_tree,
    _decayed("tree_weight_decay", tree=True),
    "the tree with weight decay, whatever the first run showed",
)

#: The default policy: the critic; where it falls short, one refit; the bounds that need no
#: training.
DEFAULT: tuple[Candidate, ...] = (
    CRITIC,
    EXTENDED,
    DEEPER,
    WEIGHT_DECAY,
    TREE,
    STRONG_WEIGHT_DECAY,
    SIZE_BOUND,
    GAUSSIAN_COPULA,
)
#: ``thorough=True``: the default, and the alternative the first value points to in any case.
THOROUGH: tuple[Candidate, ...] = (
    *DEFAULT[:5],
    STRONG_WEIGHT_DECAY,
    THOROUGH_WEIGHT_DECAY,
    THOROUGH_TREE,
    SIZE_BOUND,
    GAUSSIAN_COPULA,
)
#: Every candidate by name, for ``estimate(..., candidates=[...])``.
CANDIDATES: dict[str, Candidate] = {c.name: c for c in (*DEFAULT,)}


def resolve_candidates(candidates, thorough: bool) -> tuple[Candidate, ...]:
    """The candidates of one call: ``None`` (the default or ``thorough`` policy), or a sequence of
    names and :class:`Candidate` objects; "critic" always runs first."""
    if candidates is None:
        return THOROUGH if thorough else DEFAULT
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(
            "candidates must be a list of candidate names or Candidate objects, e.g. "
            f"['critic'], got {candidates!r}"
        )
    chosen = []
    for item in candidates:
        if isinstance(item, str):
            if item not in CANDIDATES:
                raise ValueError(
                    f"unknown candidate {item!r}; the candidates are {', '.join(CANDIDATES)}"
                )
            item = CANDIDATES[item]
        if not isinstance(item, Candidate):
            raise TypeError(f"a candidate must be a name or a Candidate, got {item!r}")
        chosen.append(item)
    names = [c.name for c in chosen]
    if len(set(names)) < len(names):
        raise ValueError(f"each candidate may be named once, got {names}")
    if "critic" not in names:
        chosen.insert(0, CRITIC)
    return tuple(chosen)
