"""Experiments behind the benchmarks and the ``mdmest`` subcommands (plots need the ``bench`` extra).

- :mod:`mdmest.experiments.gaussian`: the paper's Fig. 1, neural estimators against the closed-form
  truth on correlated Gaussian views (``mdmest gaussian``), for two or more views.
"""

__all__: list[str] = []  # the experiments are submodules
