"""mdmest: multivariate neural dependency measures as drop-in PyTorch losses.

>>> from mdmest import TotalCorrelation
"""

from mdmest._version import __version__
from mdmest.decomposition import DecomposedTotalCorrelation
from mdmest.estimation import EstimateInputError, EstimateResult, EstimateWarning, estimate
from mdmest.measures import (
    DependencyMeasure,
    FTotalCorrelation,
    TotalCorrelation,
    WassersteinDependency,
    make_measure,
)

__all__ = [
    "__version__",
    "DependencyMeasure",
    "TotalCorrelation",
    "FTotalCorrelation",
    "WassersteinDependency",
    "DecomposedTotalCorrelation",
    "make_measure",
    "estimate",
    "EstimateResult",
    "EstimateWarning",
    "EstimateInputError",
]
