"""mdmest: multivariate neural dependency measures as drop-in PyTorch losses."""

from mdmest._version import __version__

__all__ = ["__version__"]
