"""The standard list of ground-truth tasks that the benchmarks run on."""

from __future__ import annotations

from mdmest.tasks.base import Task
from mdmest.tasks.gaussian import (
    correlated_pair,
    gaussian_task_with_tc,
    low_rank_gaussian_task,
    random_spectrum_gaussian_task,
    sparse_gaussian_task,
)
from mdmest.tasks.non_gaussian import (
    AdditiveNoiseTask,
    GaussianMixtureTask,
    StudentTTask,
    TransformedTask,
)

__all__ = ["task_suite"]


def _two_view_suite() -> list[Task]:
    g05, g1 = gaussian_task_with_tc(0.5, (2, 2)), gaussian_task_with_tc(1.0, (2, 2))
    return [
        StudentTTask((1, 1), dof=1),
        StudentTTask((2, 2), dof=1),
        StudentTTask((2, 2), dof=2),
        StudentTTask((5, 5), dof=2),
        StudentTTask((5, 5), dof=3),
        StudentTTask((5, 5), dof=5),
        StudentTTask((2, 2), dof=3, cov=correlated_pair(0.6, 2).cov),
        TransformedTask(g05, "asinh"),
        TransformedTask(g1, "asinh"),
        TransformedTask(g1, "normal_cdf"),
        TransformedTask(g05, "half_cube"),
        TransformedTask(g05, "spiral"),
        TransformedTask(g1, "spiral"),
        AdditiveNoiseTask(1, 0.1),
        AdditiveNoiseTask(1, 0.3),
        AdditiveNoiseTask(2, 0.5),
        GaussianMixtureTask(rho=0.9),
        low_rank_gaussian_task(1.0, (5, 5)),
        random_spectrum_gaussian_task(1.0, (5, 5)),
        sparse_gaussian_task(1.0, (5, 5), strong=2),
    ]


def _multi_view_suite() -> list[Task]:
    return [
        StudentTTask((2, 2, 2), dof=2),
        StudentTTask((1, 1, 1, 1), dof=1),
        StudentTTask((2, 2, 2, 2), dof=3),
        TransformedTask(gaussian_task_with_tc(1.0, (2, 2, 2)), "asinh"),
        TransformedTask(gaussian_task_with_tc(1.0, (2, 2, 2, 2)), "spiral"),
        TransformedTask(gaussian_task_with_tc(2.0, (3, 3, 3, 3)), "half_cube"),
        low_rank_gaussian_task(1.0, (3, 3, 3)),
        random_spectrum_gaussian_task(1.0, (3, 3, 3)),
        sparse_gaussian_task(1.0, (4, 4, 4), strong=2),
    ]


def task_suite(num_views: int | str | None = None) -> list[Task]:
    """The standard ground-truth tasks of the benchmarks (true values 0.1–4 nats, widths ≤ 10).

    Parameters
    ----------
    num_views : None, int or "multi"
        ``None``: every task; ``2``: the 20 two-view tasks; ``"multi"``: the 9 tasks with 3 or 4
        views; another int k: the tasks with exactly k views.

    Returns
    -------
    list of Task
        Fresh task objects with unique names, in a fixed order. Two-view: Student-t pairs
        (ν = 1, 2, 3, 5; one with a correlated dispersion), asinh / normal_cdf / half_cube / spiral
        maps of Gaussian pairs, additive uniform noise, the "X" Gaussian mixture, and the low-rank,
        random-spectrum and sparse Gaussian families at 1 nat on dims (5, 5). Multi-view:
        Student-t with 3 and 4 views, maps of 3- and 4-view Gaussians, the three Gaussian
        families at 3 views.

    Examples
    --------
    >>> len(task_suite(2)), len(task_suite("multi")), len(task_suite())
    (20, 9, 29)
    """
    if num_views is None:
        return _two_view_suite() + _multi_view_suite()
    if num_views == "multi":
        return _multi_view_suite()
    if isinstance(num_views, str) or int(num_views) != num_views or num_views < 2:
        raise ValueError(f"num_views must be None, 'multi' or an int >= 2, got {num_views!r}")
    if num_views == 2:
        return _two_view_suite()
    return [t for t in _multi_view_suite() if len(t.dims) == num_views]
