"""Experiments behind the benchmarks and the ``mdmest`` subcommands (plots need the ``bench`` extra).

- :mod:`mdmest.experiments.gaussian`: the paper's Fig. 1, neural estimators against the closed-form
  truth on correlated Gaussian views (``mdmest gaussian``), for two or more views.
- [`RunRecords`][mdmest.experiments.RunRecords] and [`run_pending`][mdmest.experiments.run_pending]:
  a benchmark's runs as resumable JSON-lines records; `error_statistics`, `markdown_table`,
  `pyplot` and `save_figure` turn them into tables and figures (`mdmest.experiments.records`).
- `floor_estimate`, `floor_step`: the plain-PyTorch loop the library is measured against
  (`mdmest.experiments.floor`).
- `suite_tasks`, `step_ratios`: the tasks of the task-suite benchmarks and the reading of a run's
  step times (`mdmest.experiments.suite`).
- `machine_info`: the machine a result came from, recorded by every benchmark.
"""

from mdmest.experiments.floor import floor_critic, floor_estimate, floor_loss, floor_step
from mdmest.experiments.machine import cpu_count, machine_info
from mdmest.experiments.records import (
    RunRecords,
    error_statistics,
    group_records,
    markdown_table,
    pyplot,
    run_pending,
    save_figure,
)
from mdmest.experiments.suite import (
    DATA_SEED,
    STEP_RATIO_TARGET,
    step_ratios,
    suite_tasks,
    wide_tasks,
)

__all__ = [
    "DATA_SEED",
    "STEP_RATIO_TARGET",
    "RunRecords",
    "cpu_count",
    "error_statistics",
    "floor_critic",
    "floor_estimate",
    "floor_loss",
    "floor_step",
    "group_records",
    "machine_info",
    "markdown_table",
    "pyplot",
    "run_pending",
    "save_figure",
    "step_ratios",
    "suite_tasks",
    "wide_tasks",
]
