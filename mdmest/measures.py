"""Dependency measures among K >= 2 views as ``nn.Module`` losses.

A measure is composed of a critic (any module mapping (N, Σd_k) to (N,) or (N, 1)) and a sampler that
draws product-of-marginals rows; the bound itself lives in :mod:`mdmest.functional`. The machinery
they share is :class:`DependencyMeasure`; the total correlation as a sum of two-group mutual
informations is :mod:`mdmest.decomposition`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mdmest import functional as Fn
from mdmest._base import DependencyMeasure, Scored
from mdmest._validation import check_choice
from mdmest.streaming import (
    LOG_MEAN_EXP_FORM,
    MEAN_FORM,
    accumulated,
    form_bound,
    form_statistics,
)
from mdmest.wasserstein import LIPSCHITZ_METHODS, WassersteinDependency

__all__ = [
    "DependencyMeasure",
    "TotalCorrelation",
    "FTotalCorrelation",
    "WassersteinDependency",
    "make_measure",
    "MEASURES",
    "KL_MEASURES",
    "LIPSCHITZ_METHODS",
]


class TotalCorrelation(DependencyMeasure):
    r"""Total correlation (multivariate mutual information) by the Donsker-Varadhan bound (Eq. 6).

    .. math:: \mathrm{TC}(x^1, \dots, x^K) = \mathrm{KL}(p \,\|\, \textstyle\prod_k p_k)
              \ge \mathbb{E}_p[T] - \log \mathbb{E}_q[e^{T}]

    The gradient of the log term is bias-corrected as in MINE (Belghazi et al., 2018): the batch mean
    of :math:`e^T` in its denominator is replaced by a moving average kept in the buffer
    ``running_log_mean_exp`` (log domain, so it never overflows). The value returned is still the DV
    bound. Estimates are in nats.

    Parameters
    ----------
    dims, critic, negatives
        See :class:`DependencyMeasure`.
    ema_decay : float or None
        Decay of the moving average (MINE's 1 - α); ``None`` turns the correction off.
    critic_objective : str
        What the loss maximises. "dv" (the paper's Eq. 6): the DV bound itself. "js":
        the Jensen-Shannon bound, i.e. logistic regression of joint against product rows, whose
        optimal critic is the same log-density ratio that makes the DV bound tight (Poole et al.,
        2019; Song & Ermon, 2020). Its gradients stay bounded where those of DV are dominated by
        a few product rows with a large :math:`e^T`, so it trains far more stably at large
        dependency; but with weak dependency among wide views the classifier overfits noise that
        the DV value then punishes (measured: see docs/results/core_measurements.md, "Training the DV critic
        by logistic regression"). "auto" (default): "js" when a view carries a gradient (the
        measure is a penalty on representations being trained, ``loss = task + λ·measure(z…)``),
        "dv" otherwise (a critic trained on fixed rows, as in ``estimate``). As a drop-in penalty
        DV's gradient to the encoders costs accuracy (a plain loop with three encoders on
        scikit-learn's digits cut into three bands of rows, weight 0.1, 10 seeds: -1.22 points
        of test accuracy, 0 wins of 10; JS: +0.07; benchmarks/dropin_penalty.py), as Hjelm et
        al. (2019) found for representation learning. ``last_bound`` and ``estimate`` report the
        DV bound of the critic either way.
    **kwargs
        The other options of :class:`DependencyMeasure` (``sampler``, ``names``,
        ``check_finite``).

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> measure = TotalCorrelation([4, 4, 4])
    >>> views = [torch.randn(64, 4) for _ in range(3)]
    >>> loss = measure(*views)  # minimise this (maximises the bound)
    >>> loss.backward()
    >>> measure.estimate(*views).shape
    torch.Size([])
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        critic: nn.Module | None = None,
        negatives: int = 1,
        ema_decay: float | None = 0.99,
        critic_objective: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(dims, critic=critic, negatives=negatives, **kwargs)
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1) or be None, got {ema_decay}")
        self.ema_decay = ema_decay
        self.critic_objective = check_choice(
            "critic_objective", critic_objective, ("auto", "dv", "js")
        )
        self.register_buffer("running_log_mean_exp", torch.zeros(()))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def bound(self, t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
        return Fn.dv_bound(t_joint, t_product)

    def objective(self, t_joint, t_product, joint, product):
        log_mean_exp = Fn.log_mean_exp(t_product)
        joint_mean = t_joint.mean()
        bound = joint_mean - log_mean_exp
        if _trains_by_js(self.critic_objective, joint):
            return -Fn.f_bound(t_joint, t_product, "js"), bound
        if self.ema_decay is None or not self.training or not torch.is_grad_enabled():
            return -bound, bound
        self._update_running_average(log_mean_exp.detach())
        # exp(lme - m) has value 1 at m = lme and gradient E_q[e^T ∇T] / e^m: MINE's corrected
        # gradient. Its value is taken out again, so the loss still equals −DV.
        surrogate = torch.exp(log_mean_exp - self.running_log_mean_exp)
        return log_mean_exp.detach() + surrogate - surrogate.detach() - joint_mean, bound

    def statistic_reductions(self) -> dict[str, str]:
        return dict(LOG_MEAN_EXP_FORM)

    def _statistics(self, scored: Scored) -> dict[str, torch.Tensor]:
        return form_statistics(scored.t_joint, scored.t_product, log_mean_exp=True)

    def bound_from_statistics(self, statistics) -> torch.Tensor:
        return form_bound(statistics, log_mean_exp=True)

    def _update_running_average(self, batch_value: torch.Tensor) -> None:
        """m ← decay·m + (1 − decay)·mean_batch(e^T), in the log domain; the first batch starts m.

        Written with tensor ops only, so it never synchronises with the device.
        """
        decay = self.ema_decay
        if decay == 0.0:
            updated = batch_value
        else:
            updated = torch.logaddexp(
                math.log(decay) + self.running_log_mean_exp, math.log1p(-decay) + batch_value
            )
        started = self.num_updates > 0
        self.running_log_mean_exp.copy_(torch.where(started, updated, batch_value))
        self.num_updates.add_(1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, ema_decay={self.ema_decay}, "
            f"critic_objective={self.critic_objective!r}"
        )


class FTotalCorrelation(DependencyMeasure):
    r"""f-divergence total correlation :math:`D_f(p \,\|\, \prod_k p_k)` by its variational bound (Eq. 7).

    .. math:: D_f(p \,\|\, q) \ge \mathbb{E}_p[g_f(V)] - \mathbb{E}_q[f^*(g_f(V))]

    ``divergence`` picks f: "kl" (default; the NWJ bound, in nats), "reverse_kl", "chi2" (Pearson),
    "hellinger" (squared Hellinger) or "js" (Jensen-Shannon). The critic returns the raw score V;
    the activation g_f and conjugate f* are those of the f-GAN table.

    ``critic_objective`` (KL only) is what the loss maximises: "f", the bound itself; "js", the
    Jensen-Shannon bound of V - 1 (logistic regression, whose optimal logit log p/q is the V - 1
    that makes the NWJ bound tight); "auto" (default): "js" when a view carries a gradient (a
    penalty on representations being trained), "f" otherwise (fixed rows, as in ``estimate``).
    As a drop-in penalty the NWJ gradient to the encoders costs accuracy (digits cut into three
    bands, weight 0.1, 10 seeds: -0.67 points, 2 wins of 10; JS: +0.07;
    benchmarks/dropin_penalty.py). ``last_bound`` and ``estimate`` report the f bound either way;
    with another divergence the loss is always the bound.

    Examples
    --------
    >>> measure = FTotalCorrelation([2, 3], divergence="js")
    >>> measure(torch.randn(16, 2), torch.randn(16, 3)).shape
    torch.Size([])
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        divergence: str = "kl",
        critic: nn.Module | None = None,
        negatives: int = 1,
        critic_objective: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(dims, critic=critic, negatives=negatives, **kwargs)
        self.divergence = check_choice("divergence", divergence, Fn.DIVERGENCES)
        self.critic_objective = check_choice(
            "critic_objective", critic_objective, ("auto", "f", "js")
        )
        if critic_objective == "js" and divergence != "kl":
            raise ValueError(
                f"critic_objective='js' needs divergence='kl', got divergence={divergence!r}"
            )

    @property
    def null_score(self) -> float:
        # E_p[V] - E_q[e^(V-1)] is 0 at V = 1; every other divergence's bound is 0 at V = 0.
        return 1.0 if self.divergence == "kl" else 0.0

    def bound(self, t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
        return Fn.f_bound(t_joint, t_product, self.divergence)

    def statistic_reductions(self) -> dict[str, str]:
        return dict(MEAN_FORM)

    def _statistics(self, scored: Scored) -> dict[str, torch.Tensor]:
        # E_p[g_f(V)] − E_q[f*(g_f(V))], with f*∘g_f in the stable form f_bound uses.
        conjugate = Fn._F_CONJUGATE_OF_ACTIVATION[self.divergence]
        t_joint, t_product = accumulated(scored.t_joint), accumulated(scored.t_product)
        return form_statistics(Fn.f_activation(t_joint, self.divergence), conjugate(t_product))

    def bound_from_statistics(self, statistics) -> torch.Tensor:
        return form_bound(statistics)

    def objective(self, t_joint, t_product, joint, product):
        bound = self.bound(t_joint, t_product)
        if self.divergence == "kl" and _trains_by_js(self.critic_objective, joint):
            return -Fn.f_bound(t_joint - 1.0, t_product - 1.0, "js"), bound
        return -bound, bound

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, divergence={self.divergence!r}, "
            f"critic_objective={self.critic_objective!r}"
        )


def _trains_by_js(critic_objective: str, joint: torch.Tensor) -> bool:
    """Whether the loss is the JS bound: asked for, or "auto" with views that carry a gradient."""
    if critic_objective == "js":
        return True
    return critic_objective == "auto" and joint.requires_grad and torch.is_grad_enabled()


#: The measures, by name, that bound a KL divergence (for "f": with ``divergence="kl"``, its
#: default): the ones a decomposition, adaptive negatives and ``thorough`` apply to.
KL_MEASURES = ("dv", "f")

MEASURES: dict[str, type[DependencyMeasure]] = {
    "dv": TotalCorrelation,
    "f": FTotalCorrelation,
    "wasserstein": WassersteinDependency,
}


def make_measure(name: str, dims: Sequence[int], **kwargs) -> DependencyMeasure:
    """Build a measure by name: "dv" (:class:`TotalCorrelation`), "f" (:class:`FTotalCorrelation`)
    or "wasserstein" (:class:`WassersteinDependency`); ``kwargs`` go to its constructor, and an
    unknown keyword raises a ``TypeError``.

    Examples
    --------
    >>> make_measure("f", [3, 3], divergence="chi2").divergence
    'chi2'
    """
    check_choice("measure", name, tuple(MEASURES))
    return MEASURES[name](dims, **kwargs)
