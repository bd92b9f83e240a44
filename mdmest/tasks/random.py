r"""Random tasks with a known total correlation, drawn from an integer seed: tasks nobody can tune to.

Each draw (``random_task(seed)``) picks

- K, the number of views: 2 with probability 0.4, else 3, 4 or 5 (0.2 each);
- each view's width, an integer from 1 to 32, log-uniform (floor of exp(U(0, log 33)));
- a structure, uniform over :data:`RANDOM_STRUCTURES`:

  - ``"gaussian"``: N(0, Σ) with anisotropic views and random cross-view structure
    (:func:`mdmest.tasks.random_spectrum_gaussian_task`), closed form;
  - ``"mixture_shared"``: a Gaussian mixture of C clusters whose components are products over
    views of Gaussians (random means and diagonal variances per view, then a random per-view
    affine map): the views are dependent only through the shared cluster label;
  - ``"mixture_random"``: a Gaussian mixture of C components, each with random means and a
    random covariance over all the features (diagonal plus a random low-rank cross-view part);
  - ``"sign_symmetric"``: a Gaussian z with cross-view dependence whose views are multiplied by
    independent random signs, ``x_k = ε_k z_k``: a mixture of the 2^(K−1) sign patterns in which
    every cross-view covariance is exactly zero, yet the views are dependent;
  - ``"student_t"``: a multivariate Student-t (heavy tails, shared scale) with a random
    dispersion (:class:`mdmest.tasks.StudentTTask`), closed form;
  - ``"transformed"``: one of the five above, standardised, with an invertible non-linear map
    applied to each view (:class:`mdmest.tasks.TransformedTask`); the value is the base's;

- a target total correlation, log-uniform over [0.1, 6] nats.

The target is hit by solving one scale parameter (a correlation scale in closed form; for the
mixtures, the scale α of the means and cross-view factors, by bisection in log α on a cheap Monte
Carlo estimate with common random numbers). The reported ``total_correlation`` is the actual truth,
not the target: closed form where one exists, else a Monte Carlo mean over fresh samples of the
exact pointwise value log p(x) − Σ_k log p_k(x_k) (each density a mixture, evaluated exactly with
log-sum-exp), with its standard error ``truth_stderr`` (0 for closed forms). The number of Monte
Carlo samples aims at a standard error of 1% of the value and is capped by a fixed cost model, so
a task is deterministic for its seed. A shared-cluster mixture cannot exceed (K − 1)·H(label), so
its target is capped at 85% of that.

Seeds
-----
Judging draws (:func:`judging_draw`: draw N is seeds N·100,000 onwards) judge the defaults and
are never used for tuning; tune on :data:`TUNING_SEEDS` (a disjoint range). Each is fixed before
any estimator runs on its tasks, and once its records have been read to design a change it is
spent and the next one judges. The first, :data:`JUDGING_SEEDS`, judged the critics from
nothing (adopted) and from a fitted mixture (not adopted); the second,
:data:`SECOND_JUDGING_SEEDS`, the gated mixture start (adopted); six narrow-view tasks of the
third checked the rule that narrow views start from nothing; the fourth judged ``deeper`` from
nothing; the fifth the block-diagonal mixtures of the start (adopted), and its records have been
read. The sixth judges what follows.

Examples
--------
>>> task = random_task(3)
>>> task.structure in RANDOM_STRUCTURES, 2 <= task.num_views <= 5
(True, True)
>>> [v.shape[0] for v in task.sample(4, seed=0)] == [4] * task.num_views
True
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import optimize

from mdmest.reference import block_slices
from mdmest.tasks.base import Task, _check_n, _fmt
from mdmest.tasks.gaussian import GaussianTask, random_spectrum_gaussian_task
from mdmest.tasks.mixtures import _PILOT_ROWS, MixtureTask, _draw_noise, _mc_truth, _Mixture
from mdmest.tasks.non_gaussian import TRANSFORMS, StudentTTask, TransformedTask

__all__ = [
    "JUDGING_SEEDS",
    "SECOND_JUDGING_SEEDS",
    "TUNING_SEEDS",
    "judging_draw",
    "draw_seeds",
    "RANDOM_STRUCTURES",
    "MixtureTask",
    "RandomTask",
    "random_task",
    "random_tasks",
]

RANDOM_STRUCTURES: tuple[str, ...] = (
    "gaussian",
    "mixture_shared",
    "mixture_random",
    "sign_symmetric",
    "student_t",
    "transformed",
)
"""The structures a draw picks from (uniformly)."""


def judging_draw(number: int) -> range:
    """The seeds of judging draw ``number`` (an int >= 1): ``number`` × 100,000 onwards, 100 of
    them. A draw is fixed before any estimator runs on it; once its records have been read to
    design a change it is spent, and the next one judges."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"number must be an int >= 1, got {number!r}")
    return range(number * 100_000, number * 100_000 + 100)


JUDGING_SEEDS: range = judging_draw(1)
"""The first judging draw (100 tasks): it judged two defaults and is spent (its records were
read to design the next change)."""

SECOND_JUDGING_SEEDS: range = judging_draw(2)
"""The second judging draw (100 tasks), fixed on 2026-12-07 before any estimator ran on it; it
judged the gated mixture start and was then read (its narrow views), so it is spent too."""

TUNING_SEEDS: range = range(0, 200)
"""The tuning draw (200 tasks), disjoint from both judging draws."""

_SALT = 26  # mixed into every seed's SeedSequence
_TC_RANGE = (0.1, 6.0)
_MAX_WIDTH = 32
_VIEW_PROBS = {2: 0.4, 3: 0.2, 4: 0.2, 5: 0.2}

# --------------------------------------------------------------------------------------------------
# The structures
# --------------------------------------------------------------------------------------------------


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _random_maps(rng: np.random.Generator, dims: Sequence[int]):
    """A random rotation times log-uniform scales in [0.5, 2], and a N(0, 1) shift, per view."""
    maps = []
    for d in dims:
        scales = np.exp(rng.uniform(np.log(0.5), np.log(2.0), d))
        maps.append((_rotation(rng, d) * scales, rng.standard_normal(d)))
    return tuple(maps)


def _standardising_maps(mixture: _Mixture):
    mean, sd = mixture.moments()
    return tuple((np.diag(1.0 / sd[b]), -mean[b] / sd[b]) for b in block_slices(mixture.dims))


class _Family:
    """A mixture whose means and cross-view factors scale with α (variances' spread with tanh α)."""

    def __init__(self, weights, means, log_var, factors, dims) -> None:
        self.weights, self.means, self.log_var, self.factors = weights, means, log_var, factors
        self.dims = tuple(dims)

    def at(self, alpha: float) -> _Mixture:
        return _Mixture(
            self.weights,
            alpha * self.means,
            np.exp(np.tanh(alpha) * self.log_var),
            alpha * self.factors,
            self.dims,
        )

    def solve(self, target: float, rng: np.random.Generator) -> _Mixture:
        """The mixture whose cheap TC estimate (common random numbers) crosses ``target``."""
        d, r = self.means.shape[1], self.factors.shape[2]
        noise = _draw_noise(rng, _PILOT_ROWS, self.weights, d, r)

        def tc_at(log_alpha: float) -> float:
            mixture = self.at(float(np.exp(log_alpha)))
            return float(mixture.pointwise_tc(mixture.from_noise(*noise)).mean()) - target

        lo, hi = np.log(1e-3), 0.0
        while tc_at(hi) < 0:
            lo, hi = hi, hi + np.log(2.0)
            if hi > np.log(1e4):
                return self.at(float(np.exp(hi)))  # the target is out of reach: the most there is
        if tc_at(lo) > 0:
            return self.at(float(np.exp(lo)))
        log_alpha = optimize.brentq(tc_at, lo, hi, xtol=5e-3, rtol=1e-3, maxiter=40)
        return self.at(float(np.exp(log_alpha)))


def _entropy(weights: np.ndarray) -> float:
    return float(-np.sum(weights * np.log(weights)))


def _mixture_shared(rng, dims, target):
    k, d = len(dims), sum(dims)
    # Enough clusters that (K − 1)·H(label) clears the target, if at most 24 do.
    clusters = int(np.clip(np.ceil(np.exp(target / (0.85 * (k - 1)))) + rng.integers(0, 3), 2, 24))
    weights = rng.dirichlet(np.full(clusters, 5.0))
    target = min(target, 0.85 * (k - 1) * _entropy(weights))
    means = rng.standard_normal((clusters, d))
    log_var = rng.normal(0.0, 0.5, (clusters, d))
    family = _Family(weights, means, log_var, np.zeros((clusters, d, 0)), dims)
    details = {"clusters": clusters, "label_entropy": _entropy(weights)}
    return family, target, details


def _mixture_random(rng, dims, target):
    d = sum(dims)
    components = int(rng.integers(2, 7))
    rank = int(rng.integers(1, min(4, d) + 1))
    weights = rng.dirichlet(np.full(components, 3.0))
    means = rng.standard_normal((components, d))
    log_var = rng.normal(0.0, 0.5, (components, d))
    factors = rng.standard_normal((components, d, rank)) / np.sqrt(rank)
    family = _Family(weights, means, log_var, factors, dims)
    return family, target, {"components": components, "rank": rank}


def _sign_symmetric(rng, dims, target):
    """x_k = ε_k z_k, z ~ N(0, diag(λ) + U Uᵀ), ε_k = ±1 per view independently: a mixture over
    the sign patterns ε (ε and −ε give one component) of N(0, diag(λ) + (ε∘U)(ε∘U)ᵀ)."""
    k, d = len(dims), sum(dims)
    rank = int(rng.integers(1, min(4, d) + 1))
    base = rng.standard_normal((d, rank)) / np.sqrt(rank)
    patterns = np.array(
        [[1.0] + [1.0 - 2.0 * ((i >> j) & 1) for j in range(k - 1)] for i in range(2 ** (k - 1))]
    )
    signs = np.repeat(patterns, dims, axis=1)  # (2^(K−1), D)
    factors = signs[:, :, None] * base[None]
    c = len(patterns)
    log_var = np.tile(rng.normal(0.0, 0.5, d), (c, 1))
    family = _Family(np.full(c, 1.0 / c), np.zeros((c, d)), log_var, factors, dims)
    # The variances' spread is shared by every component: fix it (tanh α → 1 from the start).
    family.at = lambda alpha, f=family: _Mixture(  # type: ignore[method-assign]
        f.weights, f.means, np.exp(f.log_var), alpha * f.factors, f.dims
    )
    return family, target, {"rank": rank, "sign_patterns": c}


_MIXTURES = {
    "mixture_shared": _mixture_shared,
    "mixture_random": _mixture_random,
    "sign_symmetric": _sign_symmetric,
}


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def _build(structure: str, rng, dims, target, *, standardise: bool):
    """(task, truth_stderr, details) for one structure at one target."""
    if structure == "gaussian":
        task = random_spectrum_gaussian_task(target, dims, seed=int(rng.integers(2**31)))
        if standardise:
            task = GaussianTask(_correlation(task.cov), dims, name=task.name)
        return task, 0.0, {}
    if structure == "student_t":
        dof = float(np.exp(rng.uniform(np.log(1.0), np.log(20.0))))
        share = rng.uniform(0.2, 1.0)  # of the target carried by the shared scale
        tails = lambda nu: StudentTTask(dims, nu).total_correlation  # noqa: E731
        if tails(dof) > share * target:
            dof = optimize.brentq(lambda nu: tails(nu) - share * target, dof, 1e7, rtol=1e-10)
        rest = max(target - tails(dof), 0.0)
        cov = random_spectrum_gaussian_task(rest, dims, seed=int(rng.integers(2**31))).cov
        if standardise:
            cov = _correlation(cov)
        return StudentTTask(dims, dof, cov), 0.0, {"dof": dof}
    family, target, details = _MIXTURES[structure](rng, dims, target)
    mixture = family.solve(target, rng)
    value, stderr, rows = _mc_truth(mixture, rng)
    maps = _standardising_maps(mixture) if standardise else _random_maps(rng, dims)
    task = MixtureTask(mixture, maps, value, stderr, rows, name=structure)
    return task, stderr, {**details, "mc_rows": rows}


# --------------------------------------------------------------------------------------------------
# The draw
# --------------------------------------------------------------------------------------------------


class RandomTask(Task):
    """One random task: a :class:`Task` with the draw's details.

    Attributes
    ----------
    seed : int
        The seed it was drawn from.
    structure : str
        One of :data:`RANDOM_STRUCTURES`.
    base_structure : str or None
        For ``"transformed"``: the structure the maps were applied to.
    target : float
        The total correlation aimed at (nats); ``total_correlation`` is the actual truth.
    truth_stderr : float
        The Monte Carlo standard error of ``total_correlation`` (0 for closed forms).
    details : dict
        Structure-specific draws (clusters, rank, dof, transform, Monte Carlo rows ...).
    """

    def __init__(self, seed, structure, base_structure, target, inner, truth_stderr, details):
        self.seed = int(seed)
        self.structure = structure
        self.base_structure = base_structure
        self.target = float(target)
        self.inner = inner
        self.dims = tuple(int(d) for d in inner.dims)
        self.total_correlation = float(inner.total_correlation)
        self.truth_stderr = float(truth_stderr)
        self.details = dict(details)
        kind = structure if base_structure is None else f"{structure}:{base_structure}"
        self.name = f"random(seed={self.seed}, {kind}, dims={self.dims}, tc={_fmt(self.target)})"

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
        return self.inner.sample(_check_n(n), seed=seed)

    def __repr__(self) -> str:
        return (
            f"RandomTask({self.name}, truth={self.total_correlation:.4f} ± {self.truth_stderr:.4f})"
        )


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _plan(seed: int):
    """(rng, dims, structure, target): the draw up to the structure's own parameters."""
    rng = np.random.default_rng(np.random.SeedSequence([_SALT, seed]))
    views = list(_VIEW_PROBS)
    k = int(rng.choice(views, p=[_VIEW_PROBS[v] for v in views]))
    dims = tuple(
        int(min(_MAX_WIDTH, np.floor(np.exp(rng.uniform(0.0, np.log(_MAX_WIDTH + 1))))))
        for _ in range(k)
    )
    structure = RANDOM_STRUCTURES[int(rng.integers(len(RANDOM_STRUCTURES)))]
    lo, hi = _TC_RANGE
    target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return rng, dims, structure, target


@functools.cache
def _draw(seed: int) -> RandomTask:
    rng, dims, structure, target = _plan(seed)
    base_structure = None
    if structure == "transformed":
        base_structure = RANDOM_STRUCTURES[int(rng.integers(len(RANDOM_STRUCTURES) - 1))]
        names = [t for t in TRANSFORMS if not (base_structure == "student_t" and t == "normal_cdf")]
        transform = names[int(rng.integers(len(names)))]
        base, stderr, details = _build(base_structure, rng, dims, target, standardise=True)
        inner = TransformedTask(base, transform)
        details = {**details, "transform": transform}
    else:
        inner, stderr, details = _build(structure, rng, dims, target, standardise=False)
    return RandomTask(seed, structure, base_structure, target, inner, stderr, details)


def random_task(seed: int) -> RandomTask:
    """The random task of ``seed`` (an int >= 0), the same for the same seed.

    Draws K, the view widths, a structure and a target total correlation as the module describes,
    builds the task and its truth (closed form, or Monte Carlo with ``truth_stderr``). Results
    are cached per seed in the process.

    Raises
    ------
    TypeError
        ``seed`` is not an int.
    ValueError
        ``seed`` is negative.
    """
    return _draw(_check_seed(seed))


def draw_seeds(name: str) -> range:
    """The seeds of a named draw: "tuning" (:data:`TUNING_SEEDS`), "judging" (the first judging
    draw) or "judging-N" (:func:`judging_draw` ``(N)``).

    Raises
    ------
    ValueError
        Any other name.
    """
    if name == "tuning":
        return TUNING_SEEDS
    if name == "judging":
        return JUDGING_SEEDS
    number = name.removeprefix("judging-")
    if name.startswith("judging-") and number.isdigit() and int(number) >= 1:
        return judging_draw(int(number))
    raise ValueError(
        f"seeds must be 'tuning', 'judging', 'judging-N' (N >= 1) or ints, got {name!r}"
    )


def random_tasks(seeds: Iterable[int] | str) -> list[RandomTask]:
    """The random tasks of ``seeds``: an iterable of ints, or ``"tuning"`` (:data:`TUNING_SEEDS`),
    ``"judging"`` (:data:`JUDGING_SEEDS`) or ``"judging-N"`` (:func:`judging_draw` ``(N)``)."""
    if isinstance(seeds, str):
        seeds = draw_seeds(seeds)
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(
            f"seeds must be an iterable of ints or 'tuning'/'judging-N', got {seeds!r}"
        ) from None
    return [random_task(s) for s in seeds]
