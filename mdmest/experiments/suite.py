"""The tasks that the task-suite benchmarks run on (``benchmarks/task_suite.py``, ``step_times.py``).

Both draw the same samples of the same tasks: [`suite_tasks`][mdmest.experiments.suite_tasks]
picks them, seed ``s`` samples with data seed ``DATA_SEED + s``; `step_ratios` reads a run's
step times against ``STEP_RATIO_TARGET``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mdmest import tasks
from mdmest.tasks import Task

__all__ = [
    "DATA_SEED",
    "STEP_RATIO_TARGET",
    "TASK_SETS",
    "step_ratios",
    "suite_tasks",
    "wide_tasks",
]

#: A run of seed s samples its task with this seed plus s.
DATA_SEED = 1000
#: The slowest training step of a run against its median step: at most this (issue 12's target).
STEP_RATIO_TARGET = 1.5
#: The sets ``suite_tasks`` picks from.
TASK_SETS = ("two", "multi", "all", "wide")


def wide_tasks() -> list[Task]:
    """Views of 10 and 32 features, weak to moderate dependency: outside the suite's widths
    (at most 10 features in all), where a critic on all features overfits its training rows."""
    return [
        tasks.StudentTTask((10, 10), dof=2),
        tasks.StudentTTask((10, 10), dof=5),
        tasks.StudentTTask((32, 32), dof=3),
        tasks.gaussian_task_with_tc(0.1, (10, 10)),
        tasks.gaussian_task_with_tc(0.3, (32, 32)),
        tasks.gaussian_task_with_tc(1.0, (32, 32)),
        tasks.low_rank_gaussian_task(0.5, (32, 32)),
        tasks.sparse_gaussian_task(0.5, (10, 10, 10)),
    ]


def suite_tasks(which: str = "all", only: Sequence[str] = ()) -> list[Task]:
    """The benchmarks' tasks: of [`mdmest.tasks.task_suite`][mdmest.tasks.task_suite] "two"
    (2 views), "multi" (3 or more) or "all"; or "wide" (`wide_tasks`).

    Parameters
    ----------
    which : {"two", "multi", "all", "wide"}
        The set.
    only : sequence of str
        Keep only the tasks whose name contains one of these (all where empty).

    Examples
    --------
    >>> [t.name for t in suite_tasks("wide", only=["dof=5"])]
    ['student_t(dof=5, dims=(10, 10))']
    """
    if which not in TASK_SETS:
        raise ValueError(f"unknown task set {which!r}; valid values are {list(TASK_SETS)}")
    if which == "wide":
        found = wide_tasks()
    else:
        found = tasks.task_suite({"two": 2, "multi": "multi", "all": None}[which])
    if only:
        found = [t for t in found if any(part in t.name for part in only)]
    return found


def step_ratios(seconds: Sequence[float], window: int, limit: float = STEP_RATIO_TARGET) -> dict:
    """The slowest step, the 99th percentile and the slowest ``window``-step median, each over the
    median step, and the number of steps over ``limit`` times the median.

    A slowdown that lasts shows in the slowest ``window``-step median, one step held up by the
    operating system only in the slowest step.

    Examples
    --------
    >>> seconds = [0.004] * 100
    >>> seconds[10] = 0.02
    >>> r = step_ratios(seconds, window=25)
    >>> round(r["slowest"], 3), r["slowest_step"], round(r["window"], 3), r["over"]
    (5.0, 10, 1.0, 1)
    """
    seconds = np.asarray(seconds, dtype=float)
    median = float(np.median(seconds))
    window = min(window, seconds.size)
    windows = np.lib.stride_tricks.sliding_window_view(seconds, window)
    return {
        "median_ms": 1e3 * median,
        "slowest": float(seconds.max()) / median,
        "slowest_step": int(seconds.argmax()),
        "p99": float(np.quantile(seconds, 0.99)) / median,
        "window": float(np.median(windows, axis=1).max()) / median,
        "over": int(np.sum(seconds > limit * median)),
    }
