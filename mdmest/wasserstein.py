"""The Wasserstein dependency measure: W₁ between the joint and the product of the marginals, by
Kantorovich-Rubinstein duality with a 1-Lipschitz critic (Eq. 8); re-exported by
:mod:`mdmest.measures`."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn

from mdmest import functional as Fn
from mdmest._base import DependencyMeasure, Scored
from mdmest._collective import RowShards
from mdmest._validation import check_choice
from mdmest.critics import MLPCritic, apply_spectral_norm
from mdmest.streaming import (
    MEAN_FORM,
    accumulated,
    form_bound,
    form_statistics,
)

__all__ = ["WassersteinDependency", "LIPSCHITZ_METHODS"]


LIPSCHITZ_METHODS = ("gradient_penalty", "spectral_norm")


def _standardized(view: torch.Tensor) -> torch.Tensor:
    return (view - view.mean(0)) / (view.std(0) + 1e-6)


def _common_scale(centred: Sequence[torch.Tensor]) -> torch.Tensor:
    """The root of the mean batch variance over every feature of every (centred) view."""
    variance = torch.cat([c.pow(2).mean(0) for c in centred]).mean()
    return (variance + 1e-12).sqrt()


class WassersteinDependency(DependencyMeasure):
    r"""Wasserstein dependency :math:`W_1(p, \prod_k p_k)` by Kantorovich-Rubinstein duality (Eq. 8).

    .. math:: W_1(p, q) = \sup_{\|T\|_L \le 1} \mathbb{E}_p[T] - \mathbb{E}_q[T]

    The critic is kept 1-Lipschitz (Euclidean) either by a gradient penalty added to the loss
    (Gulrajani et al., 2017), by default the one-sided
    :math:`\lambda\,\mathbb{E}[\max(0, \|\nabla T(\hat x)\|_2 - 1)^2]` of Petzka et al. (2018), or by
    construction: every weight matrix with spectral norm 1 and GroupSort activations, which
    preserve gradient norms and so let the critic reach slope 1. With the default
    ``normalize="scale"`` values are in the units of the views.

    Unlike KL measures, W_1 grows with the scale of the views: an encoder trained to raise the raw
    W_1 can simply inflate its outputs, which fights the task (measured: a plain loop with three
    encoders on breast cancer, ``measure.loss(z..., weight=0.1)``, 10 seeds: -1.34 points of test
    accuracy with ``normalize=False``; see benchmarks/dropin_penalty.py). So by default the critic
    reads each batch centred and divided by one common scale ``s`` (the root of the mean batch
    variance over every feature of every view), with the gradient flowing through ``s``, and its
    scores are multiplied back by ``s`` without gradient: the value is the W_1 of the views in
    their own units (``estimate`` of views scaled by c is c times as large), while the gradient
    to the views has no component along their common scale, so an encoder cannot raise the
    penalty by inflating its outputs. ``s·T(z/s)`` is 1-Lipschitz in ``z`` when ``T`` is in
    ``z/s``, so the bound holds for any ``s``.

    Accuracy against the exact W_1 of correlated Gaussian pairs, for each Lipschitz control and
    each option below: see docs/results/wasserstein_accuracy.md.

    Parameters
    ----------
    lipschitz : str
        "gradient_penalty" (default) or "spectral_norm". With "spectral_norm", the default critic
        is a GroupSort MLP whose weight matrices are orthogonal (torch's ``orthogonal``
        parametrization: all singular values 1, so exactly 1-Lipschitz); every linear layer of
        a critic you pass is spectrally normalised in place instead (Miyato et al., 2018),
        which keeps only the largest singular value at 1, so the critic may fall short of slope 1
        and read low.
    penalty_weight : float
        λ of the gradient penalty (ignored with "spectral_norm"). The default 100 keeps the
        largest slope close to 1; a smaller λ lets it exceed 1 and the value read high.
    one_sided_penalty : bool
        Penalise only slopes above 1 (default). The two-sided penalty
        :math:`(\|\nabla T\|_2 - 1)^2` also pushes the slope up where the optimal critic is flat;
        with weak dependency the critic then settles on an almost linear function and reads
        far low.
    normalize : {"scale", True, False}
        How the views are scaled before the critic, over each batch. "scale" (default): centred
        and divided by their common scale as above; values in the views' units, scale-free
        gradients. ``True``: each feature standardised (zero mean, unit variance); the value is
        then the W_1 of the standardised views, the same for any rescaling of any feature
        (-0.00 and -0.27 points in the loop above on breast cancer and digits, against -0.35 and
        -0.09 for "scale"). ``False``: the raw views, values in their units, and an encoder can
        raise the value by scaling its outputs up (use it on bounded representations, or to
        train the critic alone on fixed data). The fusion Trainer sets it per model
        (``TrainConfig.effective_measure_kwargs``).
    lipschitz_correction : bool or float
        With the gradient penalty the critic is only softly 1-Lipschitz. ``True`` makes
        ``estimate`` divide the value by max(1, L̂), L̂ the largest gradient norm of the critic
        over the joint and product rows it scores, i.e. report the bound of T / L̂; a float
        q in (0, 1) uses the q-quantile of those gradient norms as L̂. Training is unchanged.
        Off by default: with the default penalty the slope stays close to 1 and the division
        only lowers the value. Ignored with "spectral_norm".

    Examples
    --------
    >>> measure = WassersteinDependency([1, 1], lipschitz="spectral_norm")
    >>> measure(torch.randn(32, 1), torch.randn(32, 1)).shape
    torch.Size([])
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        lipschitz: str = "gradient_penalty",
        penalty_weight: float = 100.0,
        one_sided_penalty: bool = True,
        critic: nn.Module | None = None,
        negatives: int = 1,
        normalize: bool | str = "scale",
        lipschitz_correction: bool | float = False,
        **kwargs,
    ) -> None:
        self.lipschitz = check_choice("lipschitz", lipschitz, LIPSCHITZ_METHODS)
        super().__init__(dims, critic=critic, negatives=negatives, **kwargs)
        if lipschitz == "spectral_norm" and critic is not None:
            apply_spectral_norm(self.critic)
        if penalty_weight < 0:
            raise ValueError(f"penalty_weight must be >= 0, got {penalty_weight}")
        self.penalty_weight = float(penalty_weight)
        self.one_sided_penalty = bool(one_sided_penalty)
        self._normalization = self._as_normalization(normalize)
        self.normalize = normalize
        self._value_scale: torch.Tensor | None = None
        self.lipschitz_correction = lipschitz_correction
        self._correction_quantile = self._as_quantile(lipschitz_correction)

    @staticmethod
    def _as_normalization(normalize) -> str:
        if isinstance(normalize, bool):
            return "standardize" if normalize else "none"
        if isinstance(normalize, str) and normalize == "scale":
            return normalize
        raise ValueError(
            "normalize must be 'scale' (the default: one common scale, value in the views' "
            f"units), True (each feature standardised) or False (raw views), got {normalize!r}"
        )

    @staticmethod
    def _as_quantile(correction) -> float | None:
        if isinstance(correction, bool):
            return 1.0 if correction else None
        if isinstance(correction, numbers.Real) and 0.0 < correction <= 1.0:
            return float(correction)
        raise ValueError(
            f"lipschitz_correction must be True, False or a quantile in (0, 1], got {correction!r}"
        )

    def default_critic(self, in_features: int) -> nn.Module:
        if self.lipschitz == "spectral_norm":
            return self._orthogonal_critic(in_features)
        return MLPCritic(in_features)

    @staticmethod
    def _orthogonal_critic(in_features: int) -> MLPCritic:
        """GroupSort MLP whose every weight matrix is orthogonal (all singular values 1): exactly
        1-Lipschitz, with no power iteration to lag behind the weights (Anil et al., 2019)."""
        from torch.nn.utils.parametrizations import orthogonal

        critic = MLPCritic(in_features, activation="groupsort")
        for layer in critic.modules():
            if isinstance(layer, nn.Linear):
                square = layer.weight.shape[0] == layer.weight.shape[1]
                # Cayley for the square layer (a 2000-step estimate took 27 s instead of 64 s
                # with the matrix exponential, same accuracy); Householder, torch's default,
                # for the others.
                orthogonal(layer, orthogonal_map="cayley" if square else None)
        return critic

    def prepare(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self._value_scale = None
        if self._normalization == "none":
            return list(views)
        # In float32 even for half-precision views: in float16 the backward pass of the
        # standardisation overflows once a feature's batch std is small (docs/robustness.md).
        if self._normalization == "standardize":
            return [_standardized(v.float()).to(v.dtype) for v in views]
        wide = [v if v.dtype in (torch.float32, torch.float64) else v.float() for v in views]
        centred = [w - w.mean(0) for w in wide]
        scale = _common_scale(centred)
        # Multiplied back onto the scores by _score, without gradient: the value
        # stays in the views' units, the gradient to the views has no part along their scale.
        self._value_scale = scale.detach()
        return [(c / scale).to(v.dtype) for c, v in zip(centred, views)]

    def _score(self, views, negatives=None, *, local=False):
        # prepare() runs inside (on the global batch under a CrossRankSampler) and leaves the
        # common scale of the rows it prepared in _value_scale.
        scored = super()._score(views, negatives, local=local)
        scale, self._value_scale = self._value_scale, None
        if scale is None:
            return scored
        scale = scale.to(scored.t_joint.dtype)  # s·T(z/s) is 1-Lipschitz in z when T is in z/s
        return scored._replace(t_joint=scored.t_joint * scale, t_product=scored.t_product * scale)

    def bound(self, t_joint: torch.Tensor, t_product: torch.Tensor) -> torch.Tensor:
        return Fn.wasserstein_bound(t_joint, t_product)

    def estimate(
        self,
        *views: torch.Tensor,
        negatives: int | None = None,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """The bound on these views; see :meth:`DependencyMeasure.estimate`. With
        ``lipschitz_correction``, divided by max(1, L̂) (gradient norms over the joint and the
        first B product rows; it works under ``torch.inference_mode()`` too)."""
        quantile = self._slope_quantile()
        if quantile is None:
            return super().estimate(*views, negatives=negatives, generator=generator)
        with self._evaluating(generator, views):
            scored = self._score(views, negatives)
            points = torch.cat([scored.joint, scored.product])
            # Across ranks: the largest slope over every rank's points.
            slope = scored.shards.max(Fn.lipschitz_constant(self.critic_scores, points, quantile))
            return self.bound(scored.t_joint, scored.t_product) / slope.clamp(min=1.0)

    def _slope_quantile(self) -> float | None:
        """The quantile of the gradient norms that the value is divided by (None: no division)."""
        return self._correction_quantile if self.lipschitz == "gradient_penalty" else None

    def objective(self, t_joint, t_product, joint, product):
        bound = self.bound(t_joint, t_product)
        loss = -bound
        if self.lipschitz == "gradient_penalty" and self.penalty_weight and torch.is_grad_enabled():
            loss = loss + self.penalty_weight * self._gradient_penalty(joint, product)
        return loss, bound

    def _gradient_penalty(self, joint: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
        """The gradient penalty on the step's draw: each product row paired with the joint row of
        its column, ε drawn for every column of the draw, the mean over all of them; across ranks
        (``joint``: the global rows, ``product``: this rank's) the same value on every rank."""
        shards = self._shards  # None: objective called outside a forward pass, on these rows
        if shards is None:
            shards = RowShards.whole(joint.shape[0], product.shape[0], self.generator)
        columns = shards.columns
        eps = torch.rand(
            shards.total, 1, generator=shards.generator, device=joint.device, dtype=joint.dtype
        )[columns]
        if product.shape[0]:
            paired = torch.arange(columns.start, columns.stop, device=joint.device) % shards.batch
            mean = Fn.gradient_penalty(
                self.critic_scores,
                joint.index_select(0, paired),
                product,
                one_sided=self.one_sided_penalty,
                eps=eps,
            )
        else:  # more ranks than product rows: this one adds nothing
            mean = product.sum() * 0.0
        return shards.mean_over_columns(mean)

    def statistic_reductions(self) -> dict[str, str]:
        quantile = self._slope_quantile()
        if quantile is None:
            return dict(MEAN_FORM)
        if quantile != 1.0:
            raise ValueError(
                "a quantile of the gradient norms cannot be accumulated exactly over batches; "
                "use lipschitz_correction=True (the largest norm) or False"
            )
        return {**MEAN_FORM, "slope": "max"}

    def _statistics(self, scored: Scored) -> dict[str, torch.Tensor]:
        statistics = form_statistics(scored.t_joint, scored.t_product)
        if "slope" in self.statistic_reductions():
            points = torch.cat([scored.joint, scored.product])
            slope = Fn.lipschitz_constant(self.critic_scores, points, 1.0)
            statistics["slope"] = accumulated(slope)
        return statistics

    def bound_from_statistics(self, statistics) -> torch.Tensor:
        value = form_bound(statistics)
        if "slope" in statistics:
            value = value / statistics["slope"].clamp(min=1.0)
        return value

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, lipschitz={self.lipschitz!r}, "
            f"penalty_weight={self.penalty_weight}, one_sided_penalty={self.one_sided_penalty}, "
            f"normalize={self.normalize}, lipschitz_correction={self.lipschitz_correction}"
        )
