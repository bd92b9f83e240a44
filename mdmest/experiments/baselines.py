"""Baseline estimators of mutual information / total correlation, written with nothing from the
rest of mdmest, that ``benchmarks/task_suite.py`` and ``benchmarks/random_tasks.py`` score beside
the library (the field's estimators, for comparison).

- :func:`infonce`: the InfoNCE bound (van den Oord et al., 2018; Poole et al., 2019) with a
  separable critic T(x, y) = f(x)·g(y) on all B × B pairs of a batch, trained with Adam on 80% of
  the rows (a fifth of them set aside to stop early) and read on the other 20%. Like every
  InfoNCE value it is capped at log B.
- :func:`ksg`: the Kraskov–Stögbauer–Grassberger estimator (Kraskov et al., 2004, algorithm 1) on
  all the rows, with its K-view total-correlation form.
- :func:`mine`: MINE (Belghazi et al., 2018): the Donsker–Varadhan bound with a joint critic
  T(x, y) on the concatenated views, product pairs from a shuffle within the batch, and the
  moving-average correction of the gradient; same split, budget and early stopping as
  :func:`infonce`, read on the held-out rows (not capped at log B).

All take K arrays of shapes (n, d_k), like :func:`mdmest.estimate`, and return nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma
from torch import nn

__all__ = ["infonce", "infonce_pair", "ksg", "mine", "mine_pair"]


def _as_arrays(views: Sequence) -> list[np.ndarray]:
    if isinstance(views, np.ndarray):
        raise TypeError("views must be a sequence of K arrays (one per view), not a single array")
    arrays = [np.asarray(v, dtype=np.float64) for v in views]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    if len(arrays) < 2:
        raise ValueError(f"need at least 2 views, got {len(arrays)}")
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"views must have the same number of rows, got {[len(a) for a in arrays]}")
    return arrays


def _standardise(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    ref = x if ref is None else ref
    std = ref.std(axis=0)
    return (x - ref.mean(axis=0)) / np.where(std > 0, std, 1.0)


# ---------------------------------------------------------------------------------------- KSG


def ksg(views: Sequence, k: int = 3, *, jitter: float = 1e-10, seed: int = 0) -> float:
    r"""KSG estimate (algorithm 1) of the total correlation of K views, in nats, from all the rows.

    With ε_i the max-norm distance from row i to its k-th nearest neighbour in the joint space
    (all views concatenated) and n_{k,i} the number of other rows whose view k lies strictly within
    ε_i of row i's view k (max-norm in that view),

    .. math::
        \widehat{TC} = ψ(k) + (K − 1)\,ψ(N) − \big\langle \textstyle\sum_k ψ(n_{k,i} + 1) \big\rangle_i,

    which for K = 2 is Kraskov et al.'s I^{(1)}(X, Y). Every feature is standardised first, and
    noise of scale ``jitter`` breaks ties (duplicate rows would otherwise make ε_i = 0). Like the
    original, it is nearly unbiased for weak dependency among few features and biased downward
    for strong dependency or many features.

    Parameters
    ----------
    views : sequence of array-like
        K arrays of shapes (n, d_k); a 1-d array is one feature.
    k : int
        Neighbours per row (Kraskov et al. suggest 2–4).
    jitter, seed : float, int
        Scale and seed of the tie-breaking noise.
    """
    arrays = _as_arrays(views)
    n = len(arrays[0])
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < n rows, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    arrays = [_standardise(a) + jitter * rng.standard_normal(a.shape) for a in arrays]
    joint = np.concatenate(arrays, axis=1)
    # k + 1: the nearest "neighbour" of each row is the row itself.
    distances, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)
    radius = np.nextafter(distances[:, -1], 0)  # "strictly within": just below ε_i
    total = 0.0
    for view in arrays:
        counts = cKDTree(view).query_ball_point(view, r=radius, p=np.inf, return_length=True)
        total += digamma(counts).mean()  # counts include the row itself: ψ(n_k + 1)
    return float(digamma(k) + (len(arrays) - 1) * digamma(n) - total)


# ----------------------------------------------------------------- shared by InfoNCE and MINE

Pair = tuple[torch.Tensor, torch.Tensor]


def _split_pair(
    x: np.ndarray, y: np.ndarray, test_fraction: float, validation_fraction: float, seed: int
) -> tuple[Pair, Pair, Pair]:
    """Paired rows split once (seeded) into fitting, validation and held-out parts, each
    standardised with the fitting rows' mean and std, as float32 tensors."""
    x, y = (np.asarray(a, dtype=np.float64) for a in (x, y))
    x, y = (a[:, None] if a.ndim == 1 else a for a in (x, y))
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    n_val = int(round((len(x) - n_test) * validation_fraction))
    test_idx, val_idx, fit_idx = np.split(order, [n_test, n_test + n_val])

    def part(idx: np.ndarray) -> Pair:
        x_part, y_part = (
            torch.as_tensor(_standardise(a[idx], a[fit_idx]), dtype=torch.float32) for a in (x, y)
        )
        return x_part, y_part

    return part(fit_idx), part(val_idx), part(test_idx)


def _fit_early_stopped(
    critic: nn.Module,
    fit: Pair,
    batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    validation_value: Callable[[], float],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    check_every: int,
    patience: int,
    generator: torch.Generator,
) -> None:
    """Adam on minibatches of the fitting rows (reshuffled each epoch by ``generator``) for at most
    ``steps`` steps; every ``check_every`` steps ``validation_value()`` is read, training stops
    after ``patience`` checks without a better one, and the best critic is loaded."""
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    n_fit = len(fit[0])
    per_epoch = n_fit // batch_size
    best, best_state, since_best = -math.inf, None, 0
    for step in range(steps):
        if step % per_epoch == 0:
            epoch = torch.randperm(n_fit, generator=generator)
        idx = epoch[(step % per_epoch) * batch_size :][:batch_size]
        loss = batch_loss(fit[0][idx], fit[1][idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % check_every == 0 or step + 1 == steps:
            value = validation_value()
            if value > best:
                best, since_best = value, 0
                best_state = {k: v.clone() for k, v in critic.state_dict().items()}
            else:
                since_best += 1
                if since_best >= patience:
                    break
    critic.load_state_dict(best_state)


def _chain(pair: Callable[..., float], views: Sequence, options: dict) -> float:
    """TC(X_1, …, X_K) = Σ_k I(X_1, …, X_k; X_{k+1}), each term ``pair(..., **options)``."""
    arrays = _as_arrays(views)
    total = 0.0
    for k in range(1, len(arrays)):
        total += pair(np.concatenate(arrays[:k], axis=1), arrays[k], **options)
    return total


# ------------------------------------------------------------------------------------ InfoNCE


class SeparableCritic(nn.Module):
    """T(x, y) = f(x) · g(y) / √m with two MLPs f, g into R^m: all B × B scores in one matmul."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 256, embed: int = 64) -> None:
        super().__init__()
        self.f = _mlp(dim_x, hidden, embed)
        self.g = _mlp(dim_y, hidden, embed)
        self.scale = 1.0 / math.sqrt(embed)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (B, B) matrix of scores T(x_i, y_j)."""
        return self.f(x) @ self.g(y).T * self.scale


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.GELU(),
        nn.Linear(hidden, hidden),
        nn.GELU(),
        nn.Linear(hidden, d_out),
    )


def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """mean_i [T_ii − logsumexp_j T_ij + log B] for a (B, B) score matrix; at most log B."""
    batch = scores.shape[0]
    return (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean() + math.log(batch)


def infonce_pair(
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    check_every: int = 50,
    patience: int = 10,
    seed: int = 0,
) -> float:
    """The held-out InfoNCE value of I(X; Y) from paired rows (n, d_x) and (n, d_y), in nats.

    The rows are split once (seeded) into a held-out part (``test_fraction``) and a training part,
    of which ``validation_fraction`` is set aside for early stopping; the features are
    standardised with the fitting rows' mean and std. A :class:`SeparableCritic` is trained with
    Adam on minibatches of the fitting rows (shuffled each epoch) for at most ``steps`` steps;
    every ``check_every`` steps the bound is read on the validation rows, and training stops after
    ``patience`` checks without a better one, keeping the best critic. Without early stopping the
    critic overfits the joint rows (at 2000 rows of 5 + 5 features and 1 nat, 2000 steps read
    −12 nats on the held-out rows). The value is the bound averaged over the held-out rows cut
    into batches of ``batch_size`` rows (the last, shorter one dropped), so it is capped at
    log(batch_size), as in training.
    """
    fit, validation, test = _split_pair(x, y, test_fraction, validation_fraction, seed)
    n_val = len(validation[0])
    batch_size = min(batch_size, len(fit[0]), len(test[0]))
    if batch_size < 2 or n_val < 2:
        raise ValueError(f"{len(x)} rows leave too few for the held-out and validation splits")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = SeparableCritic(fit[0].shape[1], fit[1].shape[1])
        _fit_early_stopped(
            critic,
            fit,
            lambda xb, yb: -infonce_bound(critic(xb, yb)),
            lambda: _heldout_bound(critic, *validation, min(batch_size, n_val)),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            check_every=check_every,
            patience=patience,
            generator=torch.Generator().manual_seed(seed),
        )
        return _heldout_bound(critic, *test, batch_size)


def _heldout_bound(critic: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """The bound averaged over consecutive batches of ``batch_size`` rows (the rest dropped)."""
    with torch.no_grad():
        values = [
            infonce_bound(critic(x[s : s + batch_size], y[s : s + batch_size]))
            for s in range(0, len(x) - batch_size + 1, batch_size)
        ]
    return float(torch.stack(values).mean())


def infonce(
    views: Sequence,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> float:
    r"""InfoNCE estimate of the total correlation of K views, in nats (:func:`infonce_pair`).

    For two views it is the held-out InfoNCE value of I(X_1; X_2), at most log(batch_size). For
    K > 2 views it is the chain rule

    .. math::
        TC(X_1, …, X_K) = \sum_{k=1}^{K-1} I(X_1, …, X_k;\ X_{k+1}),

    each term a separate 2-group InfoNCE estimate (its own critic, ``steps`` steps, same split
    seed): so the K-view value is capped at (K − 1)·log(batch_size), and costs K − 1 trainings.
    """
    options = dict(
        steps=steps, batch_size=batch_size, lr=lr, test_fraction=test_fraction, seed=seed
    )
    return _chain(infonce_pair, views, options)


# --------------------------------------------------------------------------------------- MINE


class JointCritic(nn.Module):
    """T(x, y) = MLP([x, y]), a scalar per pair of rows."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = _mlp(dim_x + dim_y, hidden, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, y], dim=1)).squeeze(1)


def _dv_value(
    critic: nn.Module, x: torch.Tensor, y: torch.Tensor, shuffles: int, seed: int
) -> float:
    """mean T(x_i, y_i) − log mean exp T(x_i, y_π(i)) over ``shuffles`` seeded permutations π."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        joint = critic(x, y).mean()
        product = torch.cat(
            [critic(x, y[torch.randperm(len(y), generator=generator)]) for _ in range(shuffles)]
        )
        return float(joint - (torch.logsumexp(product, 0) - math.log(len(product))))


def mine_pair(
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    ema: float = 0.01,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    check_every: int = 50,
    patience: int = 10,
    shuffles: int = 8,
    seed: int = 0,
) -> float:
    r"""The held-out MINE value of I(X; Y) from paired rows (n, d_x) and (n, d_y), in nats.

    A :class:`JointCritic` is trained with Adam on minibatches of the fitting rows to maximise the
    Donsker–Varadhan bound mean T(x, y) − log mean exp T(x, ỹ), ỹ the batch's y shuffled. The
    gradient of the log term is biased on a minibatch; as in MINE it is replaced by
    ∇ mean exp T / m, with m a moving average (rate ``ema``) of mean exp T, kept in log space.
    Split, standardisation and early stopping are :func:`infonce_pair`'s; the value is the bound
    on the held-out rows, their product pairs from ``shuffles`` seeded permutations.
    """
    fit, validation, test = _split_pair(x, y, test_fraction, validation_fraction, seed)
    batch_size = min(batch_size, len(fit[0]))
    if batch_size < 2 or len(validation[0]) < 2 or len(test[0]) < 2:
        raise ValueError(f"{len(x)} rows leave too few for the held-out and validation splits")
    if not 0.0 < ema <= 1.0:
        raise ValueError(f"ema must lie in (0, 1], got {ema}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = JointCritic(fit[0].shape[1], fit[1].shape[1])
        generator = torch.Generator().manual_seed(seed)
        log_avg = None  # log of the moving average of mean exp T on product pairs

        def batch_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            nonlocal log_avg
            joint = critic(xb, yb).mean()
            product = critic(xb, yb[torch.randperm(len(yb), generator=generator)])
            log_mean = torch.logsumexp(product, 0) - math.log(len(product))
            current = log_mean.detach()
            if log_avg is None:
                log_avg = current
            else:
                log_avg = torch.logaddexp(log_avg + math.log1p(-ema), current + math.log(ema))
            # d/dθ of exp(log_mean − log_avg) is ∇ mean exp T / (moving average): MINE's gradient.
            return -(joint - torch.exp(log_mean - log_avg))

        _fit_early_stopped(
            critic,
            fit,
            batch_loss,
            lambda: _dv_value(critic, *validation, shuffles, seed),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            check_every=check_every,
            patience=patience,
            generator=generator,
        )
        return _dv_value(critic, *test, shuffles, seed + 1)


def mine(
    views: Sequence,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> float:
    """MINE estimate of the total correlation of K views, in nats (:func:`mine_pair`); K > 2 views:
    the chain rule of :func:`infonce`, one critic per term."""
    options = dict(
        steps=steps, batch_size=batch_size, lr=lr, test_fraction=test_fraction, seed=seed
    )
    return _chain(mine_pair, views, options)
