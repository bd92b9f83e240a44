"""Every constant of :func:`mdmest.estimate`'s policy, in one frozen object a caller can pass."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

__all__ = ["EstimateConfig"]


@dataclass(frozen=True)
class EstimateConfig:
    """The constants of ``estimate``'s protocol and candidates.

    Pass one to ``mdmest.estimate(..., config=EstimateConfig(...))``, or change one field of the
    defaults with ``dataclasses.replace(EstimateConfig(), refit_weight_decay=0.1)``. Each default
    says in its comment where it was chosen; the numbers that judge them are in
    docs/benchmarks.md.

    Attributes
    ----------
    validation_fraction : float
        Share of the rows not held out for the test value that become validation rows (the
        rows every choice is made on: one half picks each critic's kept state and shrinkage,
        the other the candidate). Default 0.125: at 10,000 rows, 1,000 validation rows.
    few_rows, few_rows_validation_fraction : int, float
        Below ``few_rows`` rows outside the test part, ``few_rows_validation_fraction`` of them
        (0.25) are validation rows instead: with few rows the critic overfits within a few
        epochs and the best state on validation is what keeps it honest (chosen on 3 Gaussian
        views at 1 nat, 50 to 2,000 rows).
    validation_product_rows : int
        Product rows of a candidate's validation value (2^16): enough to rank candidates.
    eval_product_rows : int
        Product rows of the test value, with ``eval_negatives=None`` (2^18).
    stderr_folds : int
        The standard error of a value comes from up to this many disjoint folds of its rows.
    few_test_rows : int
        Fewer test rows than this earn a warning to read the value with its standard error.
    refit_min_rows : int
        The fewest rows at which the refit candidates (weight decay, the tree, the view-size
        critic, a longer run) are tried: with fewer, the best state on validation already
        stops an overfitting critic (5,000 rows, as in earlier releases).
    refit_gap_fraction, refit_gap_nats : float
        A critic overfits when its validation value is below its final training bound by more
        than this fraction of the bound, 3 standard errors and ``refit_gap_nats`` (chosen at
        10,000 rows on Gaussian views of 20 features at 0.5 to 4 nats).
    refit_weight_decay, refit_strong_weight_decay : float
        Weight decay of the refit after an overfit critic (0.3), and of the third run where
        that overfits too (1.0; chosen on wide Student-t views).
    split_nats : float
        With three or more views, an overfit critic that read at least this many nats is
        refitted as the tree of two-group terms (each a weaker dependency), below it with
        weight decay (1.5; from the accuracy ladder).
    rise_fraction, rise_nats, extend_lr_factor : float
        A critic whose training bound still rose by more than ``rise_fraction`` of it (and
        ``rise_nats``) from the third to the last quarter of its steps is trained as long
        again, from where it stopped, at ``extend_lr_factor`` times the learning rate.
    closed_form_min_rows : int
        The fewest validation and test rows the bounds that need no training are computed
        on (100): with fewer they read above 0 on independent views too often.
    size_bound_resamples, size_bound_distinct : int, float
        Bootstrap resamples of the view-size bound's standard error, and the fewest distinct
        sizes, as a fraction of the rows, it needs (with more ties the sizes are not
        continuous and the bound does not hold).
    saturation_fraction : float
        A value above this fraction of log(n) for n training rows, or views whose
        Gaussian-copula canonical correlation is 1 to within ``1e-6``, earn the warning that
        the dependency is beyond what the rows can show (0.8).
    mixture_max_components : int
        Above 0, the trained critics of "dv" and "f" with KL by name (the first one and
        ``extended``; not ``deeper``, which trains from nothing so that the validation rows
        see both starts, nor the weight-decay refits) start from the log-density
        ratio of a Gaussian mixture fitted to the training rows
        (:class:`mdmest.critics.OffsetCritic`): of 2, 4, ... up to this many components (with
        full covariances, and with ``mixture_block`` block-diagonal ones too), the
        mixture whose DV bound is highest on the tuning rows, where that bound is above the
        single Gaussian's by more than the noise (the rows show dependency one Gaussian does
        not); elsewhere, and with 0, the critics start from nothing. 8: the gate was chosen on
        the first judging draw's records and judged on the second (mean |relative error| 15.3%
        → 13.2%, below −20% 18 → 13; docs/benchmarks.md).
    mixture_block : int
        1: the mixtures of that start include those whose covariances are block-diagonal by
        view (the views independent given the component: a latent-class model, which views
        sharing a cluster label fit with far fewer parameters than full covariances), each
        number of components fitted both ways and the tuning rows choosing; 0: full covariances
        only, as before. Chosen on tuning seeds 0–119 and judged on the fifth judging draw
        (mean |relative error| 16.8% → 15.6%, below −20% 18 → 16; docs/benchmarks.md).
    mixture_min_features : int
        The fewest features of all the views together for that start (8): in fewer, a network
        alone learns the ratio from the rows, and a mixture's start held it back where the
        dependency is strong (chosen on the first judging draw's records and the task suite,
        checked on the third draw's narrow tasks).
    product_grad_rows : int or None
        With ``negatives="auto"``, the product side's gradient comes from this many rows drawn
        by their weight in the bound (unbiased), the value from all of them; ``None`` uses
        every row (1,024: a step at 16 negatives takes about half as long).
    """

    validation_fraction: float = 0.125
    few_rows: int = 4000
    few_rows_validation_fraction: float = 0.25
    validation_product_rows: int = 2**16
    eval_product_rows: int = 2**18
    stderr_folds: int = 10
    few_test_rows: int = 250
    refit_min_rows: int = 5000
    refit_gap_fraction: float = 0.05
    refit_gap_nats: float = 0.02
    refit_weight_decay: float = 0.3
    refit_strong_weight_decay: float = 1.0
    split_nats: float = 1.5
    rise_fraction: float = 0.03
    rise_nats: float = 0.01
    extend_lr_factor: float = 2.0
    closed_form_min_rows: int = 100
    size_bound_resamples: int = 100
    size_bound_distinct: float = 0.9
    saturation_fraction: float = 0.8
    mixture_max_components: int = 8
    mixture_block: int = 1
    mixture_min_features: int = 8
    product_grad_rows: int | None = 1024

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "product_grad_rows" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"EstimateConfig.{item.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"EstimateConfig.{item.name} must be a finite number >= 0, got {value!r}"
                )
            if isinstance(item.default, int) and not isinstance(value, numbers.Integral):
                raise TypeError(f"EstimateConfig.{item.name} must be an int, got {value!r}")
        if self.mixture_block not in (0, 1):
            raise ValueError(
                f"EstimateConfig.mixture_block must be 0 or 1, got {self.mixture_block!r}"
            )
        for name in ("validation_fraction", "few_rows_validation_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(
                    f"EstimateConfig.{name} must lie in (0, 1), got {getattr(self, name)!r}"
                )
