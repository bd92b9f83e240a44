"""Critic networks T: R^(d_1 + ... + d_K) -> R over the concatenated views."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from mdmest._mixture import fit_mixture
from mdmest._validation import check_choice

__all__ = [
    "MLPCritic",
    "GaussianCritic",
    "GaussianMixtureCritic",
    "OffsetCritic",
    "GroupSort",
    "paper_critic",
    "ACTIVATIONS",
    "apply_spectral_norm",
]


class GroupSort(nn.Module):
    """Sort features within groups of ``group_size`` (MaxMin for 2).

    A 1-Lipschitz activation that preserves the gradient norm, so a spectrally normalised network
    built with it can reach Lipschitz constant 1 instead of falling short of it (Anil et al., 2019).
    """

    def __init__(self, group_size: int = 2) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.group_size:
            raise ValueError(
                f"GroupSort needs a width divisible by {self.group_size}, got {x.shape[-1]}"
            )
        grouped = x.unflatten(-1, (-1, self.group_size))
        return grouped.sort(dim=-1).values.flatten(-2)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "groupsort": GroupSort,
}
OUTPUT_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every ``nn.Linear`` in ``module`` (in place) that is not already."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear) and not hasattr(layer, "parametrizations"):
            _spectral_norm(layer)
    return module


class _ResidualBlock(nn.Module):
    """h + dropout(act(W norm(h) + b)), norm a LayerNorm or the identity."""

    def __init__(self, width: int, activation: str, dropout: float, layer_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if layer_norm else nn.Identity()
        self.linear = nn.Linear(width, width)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.activation(self.linear(self.norm(x))))


class MLPCritic(nn.Module):
    """A multilayer perceptron over the concatenated views, returning one score per row.

    Parameters
    ----------
    in_features : int
        Σ_k d_k, the width of the concatenated views.
    hidden : sequence of int
        Widths of the hidden layers (default two layers of 256).
    activation : str
        One of ``ACTIVATIONS``: "relu", "leaky_relu", "elu", "gelu", "softplus", "tanh", "groupsort".
    dropout : float
        Dropout after each hidden activation.
    spectral_norm : bool
        Spectrally normalise every linear layer (Miyato et al., 2018); with a 1-Lipschitz activation
        the critic is then 1-Lipschitz.
    output_activation : str, optional
        "sigmoid", "tanh" or "softplus" applied to the score (``None``: the raw score).
    output_bound : float, optional
        Squash the score into (−c, c) with c·tanh(T / c): a guard for a measure used as
        a loss on views that may be heavy-tailed, where an unbounded critic extrapolates to huge
        scores on extreme rows and the DV bound reads far below zero (Student-t pairs with 1
        degree of freedom, measured with and without it: see docs/results/core_measurements.md, "Critics —
        `mdmest.critics`"). It caps a DV value at 2c, so leave it ``None`` (default) when
        the dependency may be strong. :func:`mdmest.estimate` needs no guard: it maps each
        feature to normal marginals first.
    view_dims : sequence of int, optional
        The widths d_k of the concatenated views. When given, the network also reads each view's
        mean square less one, (‖x_k‖² / d_k) − 1: a direct path to a dependency carried by the
        views' sizes, as in heavy-tailed (elliptical) data whose views share one random scale,
        which a plain MLP on many features learns slowly and overfits first. With features of
        unit variance (what :func:`mdmest.estimate` feeds it) the extra inputs are centred.
    residual : bool
        Every hidden layer after the first is a residual block, h + act(W h + b), which needs
        equal hidden widths. With ``layer_norm``, pre-norm blocks, h + act(W LN(h) + b), and a
        LayerNorm before the output layer.
    layer_norm : bool
        LayerNorm in each hidden layer: after the linear map (before the activation) without
        ``residual``, before it (pre-norm) with ``residual``. Not with ``spectral_norm`` (a
        LayerNorm is not 1-Lipschitz).

    Examples
    --------
    >>> critic = MLPCritic(12, hidden=(64, 64))
    >>> critic(torch.zeros(5, 12)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        spectral_norm: bool = False,
        output_activation: str | None = None,
        output_bound: float | None = None,
        view_dims: Sequence[int] | None = None,
        residual: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, tuple(ACTIVATIONS))
        if output_activation is not None:
            check_choice("output_activation", output_activation, tuple(OUTPUT_ACTIVATIONS))
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if output_bound is not None and not output_bound > 0:
            raise ValueError(f"output_bound must be > 0 or None, got {output_bound}")
        if view_dims is not None:
            if spectral_norm:
                raise ValueError(
                    "view_dims adds squared sizes, so the critic is no longer 1-Lipschitz: "
                    "use it without spectral_norm"
                )
            view_dims = [int(d) for d in view_dims]
            if min(view_dims, default=0) < 1 or sum(view_dims) != in_features:
                raise ValueError(
                    f"view_dims must be positive widths summing to in_features={in_features}, "
                    f"got {view_dims}"
                )
        hidden = [int(h) for h in hidden]
        if min(hidden, default=1) < 1:
            raise ValueError(f"hidden widths must be >= 1, got {hidden}")
        if residual and len(set(hidden)) > 1:
            raise ValueError(f"residual blocks need equal hidden widths, got {hidden}")
        if layer_norm and spectral_norm:
            raise ValueError(
                "layer_norm is not 1-Lipschitz, so the critic would not be: use it without "
                "spectral_norm"
            )
        layers: list[nn.Module] = []
        width = in_features + (len(view_dims) if view_dims else 0)
        for i, h in enumerate(hidden):
            if residual and i > 0:
                layers.append(_ResidualBlock(h, activation, dropout, layer_norm))
                continue
            layers.append(nn.Linear(width, h))
            if layer_norm and not residual:
                layers.append(nn.LayerNorm(h))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        if residual and layer_norm and hidden:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.Linear(width, 1))
        if output_activation is not None:
            layers.append(OUTPUT_ACTIVATIONS[output_activation]())
        self.net = nn.Sequential(*layers)
        if spectral_norm:
            apply_spectral_norm(self.net)
        self.in_features = in_features
        self.output_bound = output_bound
        self.view_dims = view_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.view_dims:
            sizes = [v.pow(2).mean(-1, keepdim=True) - 1 for v in x.split(self.view_dims, -1)]
            x = torch.cat([x, *sizes], dim=-1)
        score = self.net(x).squeeze(-1)
        if self.output_bound is not None:
            score = self.output_bound * torch.tanh(score / self.output_bound)
        return score


class GaussianCritic(nn.Module):
    r"""The Gaussian log-density ratio, fitted in closed form: no training.

    .. math:: T(x) = \log \mathcal{N}(x; \mu, \Sigma)
              - \sum_k \log \mathcal{N}(x_k; \mu_k, \Sigma_{kk})

    with :math:`\mu, \Sigma` the mean and covariance of the rows it is fitted on
    (:meth:`fit`). For jointly Gaussian views it is the optimal critic of every KL-type bound,
    and its DV bound is the Gaussian total correlation; on any other data it is a critic like
    any other, so its DV bound on rows it was not fitted on is still a lower bound on the TC
    (only lower). :func:`mdmest.estimate` scores it on the held-out rows in the Gaussian-copula
    transform (candidate "gaussian_copula"), where per-feature maps of Gaussian views are
    Gaussian again. It computes in float64 and returns scores in the input's dtype.

    Examples
    --------
    >>> rows = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0))
    >>> critic = GaussianCritic.fit(rows, [2, 2])
    >>> critic(rows[:3]).shape
    torch.Size([3])
    """

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = [int(d) for d in dims]
        width = sum(self.dims)
        self.register_buffer("mean", torch.zeros(width, dtype=torch.float64))
        # The joint precision less the block-diagonal of the views' precisions.
        self.register_buffer("precision_gap", torch.zeros(width, width, dtype=torch.float64))
        self.register_buffer("constant", torch.zeros((), dtype=torch.float64))
        #: The shrinkage of the fit (:meth:`fit`): none by default.
        self.threshold, self.scale = 0.0, 1.0

    @classmethod
    def fit(
        cls,
        rows: torch.Tensor | np.ndarray,
        dims: Sequence[int],
        threshold: float = 0.0,
        scale: float = 1.0,
    ) -> GaussianCritic:
        """The critic of the Gaussian fitted to ``rows`` of shape (n, Σ d_k), the views
        concatenated. Raises ``ValueError`` where the covariance is singular (fewer rows than
        features, a constant or repeated feature).

        ``threshold`` and ``scale`` shrink the dependency between views: the canonical
        correlations of each pair of views (the singular values of their whitened
        cross-covariance) become ``scale * max(s - threshold, 0)``, each view's own covariance is
        kept. With few rows per cross-view covariance, the sample's canonical correlations are
        all raised by noise and a shrunk fit generalises better; :meth:`fit_cv` picks both by
        cross-validation.
        """
        x = cls._checked_rows(rows, dims)
        if not (threshold >= 0.0 and 0.0 <= scale <= 1.0):
            raise ValueError(
                f"threshold must be >= 0 and scale in [0, 1], got threshold={threshold}, "
                f"scale={scale}"
            )
        critic = cls(dims)
        mean = x.mean(axis=0)
        cov = _shrunk(np.atleast_2d(np.cov(x, rowvar=False)), critic.dims, threshold, scale)
        critic._set(mean, cov)
        critic.threshold, critic.scale = float(threshold), float(scale)
        return critic

    @classmethod
    def fit_cv(
        cls,
        rows: torch.Tensor | np.ndarray,
        dims: Sequence[int],
        folds: int = 5,
        seed: int = 0,
    ) -> GaussianCritic:
        """:meth:`fit` with the ``threshold`` and ``scale`` of ``SHRINK_GRID`` whose critic,
        fitted on all folds but one of ``rows``, scores highest on average on the fold left out
        (the mean log-ratio, a plug-in of the total correlation); then fitted on all rows. Only
        ``rows`` are read, so the critic's bound on other rows is still a lower bound. Where a
        fold's covariance is singular, or with fewer than two rows per fold, the plain fit."""
        x = cls._checked_rows(rows, dims)
        dims = [int(d) for d in dims]
        if len(x) < 2 * folds:
            return cls.fit(x, dims)
        order = np.random.default_rng(seed).permutation(len(x))
        scores = np.zeros(len(SHRINK_GRID))
        try:
            for held in np.array_split(order, folds):
                rest = np.setdiff1d(order, held)
                cov = np.atleast_2d(np.cov(x[rest], rowvar=False))
                centred = x[held] - x[rest].mean(axis=0)
                # The mean score on the held rows is constant − tr(gap · M) / 2, M their
                # second moment about the fitted mean: one p × p product per candidate.
                moment = centred.T @ centred / len(held)
                canonical, views = _canonical(cov, dims), _view_precisions(cov, dims)
                for i, (threshold, scale) in enumerate(SHRINK_GRID):
                    shrunk = _shrunk(cov, dims, threshold, scale, canonical)
                    try:
                        gap, constant = _gap(shrunk, dims, views)
                    except ValueError:  # not positive definite once shrunk (3+ views)
                        scores[i] = -np.inf
                        continue
                    scores[i] += constant - 0.5 * float((gap * moment).sum())
        except ValueError:
            return cls.fit(x, dims)
        if not np.isfinite(scores.max()):
            return cls.fit(x, dims)
        threshold, scale = SHRINK_GRID[int(np.argmax(scores))]
        return cls.fit(x, dims, threshold, scale)

    @staticmethod
    def _checked_rows(rows, dims: Sequence[int]) -> np.ndarray:
        x = torch.as_tensor(rows).detach().to("cpu", torch.float64).numpy()
        width = sum(int(d) for d in dims)
        if x.ndim != 2 or x.shape[1] != width or x.shape[0] < 2:
            raise ValueError(
                f"expected at least 2 rows of {width} features (dims={[int(d) for d in dims]}), "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def _set(self, mean: np.ndarray, cov: np.ndarray) -> None:
        gap, constant = _gap(cov, self.dims)
        self.mean.copy_(torch.from_numpy(mean))
        self.precision_gap.copy_(torch.from_numpy(gap))
        self.constant.fill_(constant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float64, a few thousand rows at a time: wide views need no float64 copy of all rows.
        return torch.cat([self._scores(part) for part in x.split(4096)])

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        centred = x.to(torch.float64) - self.mean
        quadratic = ((centred @ self.precision_gap) * centred).sum(-1)
        return (self.constant - 0.5 * quadratic).to(x.dtype)


#: The covariances of :class:`GaussianMixtureCritic`: "full", or "block" (block-diagonal by view).
COVARIANCES = ("full", "block")


class GaussianMixtureCritic(nn.Module):
    r"""The log-density ratio of a Gaussian mixture fitted by EM: no gradient training.

    .. math:: T(x) = \log q(x) - \sum_k \log q_k(x_k),
              \qquad q = \sum_c \pi_c\, \mathcal{N}(\mu_c, \Sigma_c)

    with :math:`q_k` the marginals of :math:`q` (the mixtures of each component's view block),
    :math:`q` fitted by expectation-maximisation (:meth:`fit`) with full covariances, or with
    ``covariance="block"`` covariances block-diagonal by view: the views independent given the
    component, so that all the dependency is in the component label (a latent-class model, with
    far fewer parameters where the views share clusters). With one full component it is the
    Gaussian log-ratio (:class:`GaussianCritic` unshrunk); with more it can follow dependency
    carried by clusters, heavy tails or sign patterns, which a Gaussian misses.
    Like any critic, its DV bound on rows it was not fitted on is a lower bound on the total
    correlation (a mixture that fits badly only lowers it). :func:`mdmest.estimate` fits one on
    its training rows and trains its network critics on top of it (:class:`OffsetCritic`).

    Examples
    --------
    >>> rows = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0))
    >>> critic = GaussianMixtureCritic.fit(rows, [2, 2], components=2)
    >>> critic(rows[:3]).shape, critic.components
    (torch.Size([3]), 2)
    """

    def __init__(self, dims: Sequence[int], components: int, covariance: str = "full") -> None:
        super().__init__()
        check_choice("covariance", covariance, COVARIANCES)
        self.dims = [int(d) for d in dims]
        self.components = int(components)
        #: "full" or "block" (block-diagonal by view), as fitted.
        self.covariance = covariance
        #: The mean log-likelihood per row of the fit on its rows (set by :meth:`fit`).
        self.log_likelihood = float("nan")
        for k, d in enumerate([sum(self.dims), *self.dims]):  # 0: the joint; k: view k
            self.register_buffer(f"whiten{k}", torch.zeros(d, components * d, dtype=torch.float64))
            self.register_buffer(f"shift{k}", torch.zeros(components * d, dtype=torch.float64))
            self.register_buffer(f"log_norm{k}", torch.zeros(components, dtype=torch.float64))

    @classmethod
    def fit(
        cls,
        rows: torch.Tensor | np.ndarray,
        dims: Sequence[int],
        components: int,
        *,
        reg: float = 1e-3,
        iterations: int = 100,
        seed: int = 0,
        covariance: str = "full",
    ) -> GaussianMixtureCritic:
        """The critic of a ``components``-component mixture fitted to ``rows`` of shape
        (n, Σ d_k), the views concatenated: EM from a k-means++ start (``seed``), at most
        ``iterations`` steps, ``reg`` added to each covariance's diagonal (in the features'
        units: for features of unit variance, 1e-3 is a tenth of a percent). ``covariance``:
        "full", or "block" for covariances block-diagonal by view (the views independent given
        the component)."""
        check_choice("covariance", covariance, COVARIANCES)
        x = GaussianCritic._checked_rows(rows, dims)
        if not (isinstance(components, int) and 1 <= components <= len(x)):
            raise ValueError(
                f"components must be an int from 1 to the number of rows ({len(x)}), "
                f"got {components!r}"
            )
        if not reg > 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        mixture = fit_mixture(
            torch.from_numpy(x), components, reg=reg, iterations=iterations, seed=seed,
            blocks=dims if covariance == "block" else None,
        )  # fmt: skip
        critic = cls(dims, components, covariance)
        log_weights = torch.log(mixture.weights)
        blocks = [slice(0, x.shape[1]), *_blocks(critic.dims)]
        for k, block in enumerate(blocks):
            cov = mixture.covariances[:, block, block]
            inverse = torch.linalg.inv(torch.linalg.cholesky(cov))  # L⁻¹, (C, d, d)
            whiten = inverse.transpose(1, 2)  # x ↦ x L⁻ᵀ per component
            d = cov.shape[1]
            shift = torch.einsum("cd,cde->ce", mixture.means[:, block], whiten)
            log_det = torch.log(torch.diagonal(inverse, dim1=1, dim2=2)).sum(1)
            getattr(critic, f"whiten{k}").copy_(whiten.permute(1, 0, 2).reshape(d, -1))
            getattr(critic, f"shift{k}").copy_(shift.reshape(-1))
            getattr(critic, f"log_norm{k}").copy_(
                log_weights + log_det - 0.5 * d * np.log(2 * np.pi)
            )
        critic.log_likelihood = mixture.log_likelihood
        return critic

    def _squares(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """|z_c|² of ``x`` whitened by each component c of block k (0: the joint), (..., C)."""
        whiten = getattr(self, f"whiten{k}").to(x.dtype)
        z = (x @ whiten - getattr(self, f"shift{k}").to(x.dtype)).unflatten(
            -1, (self.components, x.shape[-1])
        )
        return z.square().sum(-1)

    def _log_density(self, squares: torch.Tensor, k: int) -> torch.Tensor:
        return torch.logsumexp(getattr(self, f"log_norm{k}").to(squares.dtype) - 0.5 * squares, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = [self._squares(v, k) for k, v in enumerate(x.split(self.dims, -1), start=1)]
        # Block-diagonal covariances whiten the joint view by view: its squares are the views'.
        joint = sum(views) if self.covariance == "block" else self._squares(x, 0)
        score = self._log_density(joint, 0)
        for k, squares in enumerate(views, start=1):
            score = score - self._log_density(squares, k)
        return score


class OffsetCritic(nn.Module):
    """A fixed critic plus a trained network: ``base(x) + net(x)``.

    ``base`` (say a :class:`GaussianMixtureCritic`) is read without gradient and never
    trained; the last linear layer of ``net`` starts at zero, so training starts from the base's
    bound and the network learns only what the base misses. :func:`mdmest.estimate` builds its
    network critics this way on top of a mixture fitted to the training rows.

    Examples
    --------
    >>> rows = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    >>> base = GaussianMixtureCritic.fit(rows, [2, 2], components=1)
    >>> critic = OffsetCritic(base, MLPCritic(4, hidden=(16,)))
    >>> bool(torch.allclose(critic(rows), base(rows) + critic.net.net[-1].bias))
    True
    """

    def __init__(self, base: nn.Module, net: nn.Module) -> None:
        super().__init__()
        self.base, self.net = base, net
        self.base.requires_grad_(False)
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"net must end in an nn.Linear layer, got {type(net).__name__}")
        with torch.no_grad():
            linears[-1].weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            base = self.base(x)
        return base + self.net(x)


#: :meth:`GaussianCritic.fit_cv`: the (threshold, scale) pairs it chooses among.
SHRINK_GRID = tuple(
    (threshold, scale)
    for threshold in (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)
    for scale in (0.6, 0.7, 0.8, 0.9, 1.0)
)


def _blocks(dims: Sequence[int]) -> list[slice]:
    ends = np.cumsum([0, *dims])
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


def _canonical(cov: np.ndarray, dims: Sequence[int]) -> dict:
    """For each pair of views (i, j): the Cholesky factors of their covariances and the SVD of
    their whitened cross-covariance L_i⁻¹ Σ_ij L_j⁻ᵀ (singular values: the canonical
    correlations)."""
    parts = _blocks(dims)
    factors = []
    for part in parts:
        try:
            factors.append(np.linalg.cholesky(cov[part, part]))
        except np.linalg.LinAlgError:
            _precision(cov[part, part])  # raises the named error
    out = {}
    for i, j in itertools.combinations(range(len(parts)), 2):
        cross = cov[parts[i], parts[j]]
        whitened = np.linalg.solve(factors[i], np.linalg.solve(factors[j], cross.T).T)
        out[i, j] = (factors[i], factors[j], *np.linalg.svd(whitened, full_matrices=False))
    return out


def _shrunk(
    cov: np.ndarray, dims: Sequence[int], threshold: float, scale: float, canonical=None
) -> np.ndarray:
    """``cov`` with each pair of views' canonical correlations s made scale·max(s − threshold, 0)."""
    if threshold == 0.0 and scale == 1.0:
        return cov
    canonical = _canonical(cov, dims) if canonical is None else canonical
    parts = _blocks(dims)
    out = cov.copy()
    for (i, j), (left, right, u, s, vt) in canonical.items():
        cross = left @ ((u * (scale * np.maximum(s - threshold, 0.0))) @ vt) @ right.T
        out[parts[i], parts[j]] = cross
        out[parts[j], parts[i]] = cross.T
    return out


def _gap(cov: np.ndarray, dims: Sequence[int], views=None) -> tuple[np.ndarray, float]:
    """The joint precision less the block-diagonal of the views' precisions, and the constant
    of the log-ratio (half the log-determinants of the views' covariances less the joint's);
    ``views``: :func:`_view_precisions` of ``cov``, where already known."""
    precision, logdet = _precision(cov)
    blocks, blocks_logdet = _view_precisions(cov, dims) if views is None else views
    return precision - blocks, -0.5 * (logdet - blocks_logdet)


def _view_precisions(cov: np.ndarray, dims: Sequence[int]) -> tuple[np.ndarray, float]:
    """The block-diagonal of the views' precisions and the sum of their log-determinants."""
    blocks, logdet = np.zeros_like(cov), 0.0
    for part in _blocks(dims):
        blocks[part, part], part_logdet = _precision(cov[part, part])
        logdet += part_logdet
    return blocks, logdet


def _precision(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """The inverse of a covariance and its log-determinant, by Cholesky."""
    try:
        factor = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"the covariance of the rows ({cov.shape[0]} features) is singular: a constant or "
            "repeated feature, or fewer rows than features"
        ) from None
    inverse_factor = np.linalg.inv(factor)
    return inverse_factor.T @ inverse_factor, float(2 * np.log(np.diag(factor)).sum())


def paper_critic(
    in_features: int, hidden: int = 128, blocks: int = 5, dropout: float = 0.4
) -> MLPCritic:
    """The statistic network of the paper's Tab. 4: five Dense-LeakyReLU-Dropout(0.4) blocks, then
    Dense(1) and a sigmoid.

    The widths are not given in the paper; ``hidden`` picks them. The sigmoid caps a DV estimate at
    1 nat, so use this preset to reproduce the paper, not to estimate large dependencies.
    """
    return MLPCritic(
        in_features,
        hidden=(hidden,) * blocks,
        activation="leaky_relu",
        dropout=dropout,
        output_activation="sigmoid",
    )
