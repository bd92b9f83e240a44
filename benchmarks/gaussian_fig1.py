"""Fig. 1 of the paper: DV, f-KL and Wasserstein estimates against the truth on two Gaussian views.

A thin script around ``mdmest gaussian`` (module :mod:`mdmest.experiments.gaussian`); every option
of that command applies.

Usage::

    python benchmarks/gaussian_fig1.py --quick --out results/gaussian   # ~2 minutes on 2 CPU cores
    python benchmarks/gaussian_fig1.py --out results/gaussian           # the full figure
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mdmest.cli import main as mdmest_main


def main(argv: Sequence[str] | None = None) -> int:
    return mdmest_main(["gaussian", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
