"""Experiments behind the benchmarks and the ``mdmest`` subcommands (plots need the ``bench`` extra).

- :mod:`mdmest.experiments.gaussian`: the paper's Fig. 1, neural estimators against the closed-form
  truth on correlated Gaussian views (``mdmest gaussian``), for two or more views.
- :func:`machine_info`: the machine a result came from, recorded by every benchmark.
"""

from mdmest.experiments.machine import cpu_count, machine_info

__all__ = ["cpu_count", "machine_info"]
