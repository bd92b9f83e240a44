r"""Sampling tasks whose true dependency is known in closed form (the ground truth of the tests and
benchmarks). A task carries its true value, as in the BMI benchmark.

Every task is a :class:`Task`: it has a readable, unique ``name``, the view widths ``dims``, the true
``total_correlation`` in nats (the mutual information when there are two views, also available as
``mutual_information``) and ``sample(n, seed=0)``, which returns K float32 arrays of shapes
``(n, d_k)``, the same ones for the same seed.

- Gaussian: :class:`GaussianTask`, :func:`correlated_pair`, :func:`gaussian_task_with_tc`,
  :func:`sparse_gaussian_task`, :func:`low_rank_gaussian_task`,
  :func:`random_spectrum_gaussian_task`.
- Non-Gaussian: :class:`StudentTTask` (heavy tails), :class:`TransformedTask` (invertible
  per-view maps of another task: ``"asinh"``, ``"normal_cdf"``, ``"half_cube"``, ``"spiral"``),
  :class:`AdditiveNoiseTask` (uniform signal plus uniform noise), :class:`GaussianMixtureTask`.
- :func:`task_suite`: the standard list the benchmarks run on.
- Random tasks nobody can tune to: :func:`random_task`, :func:`random_tasks`, the seeds
  :data:`TUNING_SEEDS` and the judging draws :func:`judging_draw` (never tune on one;
  :data:`JUDGING_SEEDS` and :data:`SECOND_JUDGING_SEEDS` are the first two, spent), or any
  draw by name with :func:`draw_seeds`.
"""

from mdmest.tasks.base import Task
from mdmest.tasks.gaussian import (
    GaussianTask,
    correlated_pair,
    equicorrelation_tc,
    gaussian_task_with_tc,
    low_rank_gaussian_task,
    random_spectrum_gaussian_task,
    sparse_gaussian_task,
)
from mdmest.tasks.non_gaussian import (
    TRANSFORMS,
    AdditiveNoiseTask,
    GaussianMixtureTask,
    StudentTTask,
    Transform,
    TransformedTask,
    additive_noise_mutual_information,
    spiral_transform,
    student_t_total_correlation,
)
from mdmest.tasks.random import (
    JUDGING_SEEDS,
    RANDOM_STRUCTURES,
    SECOND_JUDGING_SEEDS,
    TUNING_SEEDS,
    MixtureTask,
    RandomTask,
    draw_seeds,
    judging_draw,
    random_task,
    random_tasks,
)
from mdmest.tasks.suite import task_suite

__all__ = [
    "Task",
    "GaussianTask",
    "correlated_pair",
    "gaussian_task_with_tc",
    "equicorrelation_tc",
    "sparse_gaussian_task",
    "low_rank_gaussian_task",
    "random_spectrum_gaussian_task",
    "StudentTTask",
    "student_t_total_correlation",
    "Transform",
    "TRANSFORMS",
    "spiral_transform",
    "TransformedTask",
    "AdditiveNoiseTask",
    "additive_noise_mutual_information",
    "GaussianMixtureTask",
    "task_suite",
    "MixtureTask",
    "RandomTask",
    "random_task",
    "random_tasks",
    "RANDOM_STRUCTURES",
    "TUNING_SEEDS",
    "JUDGING_SEEDS",
    "SECOND_JUDGING_SEEDS",
    "judging_draw",
    "draw_seeds",
]
