"""The paper's claims C1-C4 over many seeds with paired significance tests: the same code as
``mdmest reproduce`` (:mod:`mdmest.cli.reproduce`, :func:`mdmest.fusion.reproduce.reproduce`).

    python benchmarks/reproduce.py --data breast_cancer --seeds 10 --out results/reproduce_bc

See docs/reproduction.md for the command per data source.
"""

from __future__ import annotations

import sys

from mdmest.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
