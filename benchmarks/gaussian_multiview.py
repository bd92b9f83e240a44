"""Fig. 1 for K >= 3 views: the estimators against the true total correlation at chosen levels.

A thin script around ``mdmest gaussian --views K`` (default K = 3; module
:mod:`mdmest.experiments.gaussian`); every option of that command applies, ``--grid`` taking TC levels
in nats.

Usage::

    python benchmarks/gaussian_multiview.py --quick --out results/gaussian
    python benchmarks/gaussian_multiview.py --views 4 --grid 1,2,4 --out results/gaussian
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mdmest.cli import main as mdmest_main


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--views" or a.startswith("--views=") for a in args):
        args = ["--views", "3", *args]
    return mdmest_main(["gaussian", *args])


if __name__ == "__main__":
    sys.exit(main())
