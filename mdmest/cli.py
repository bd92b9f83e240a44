"""The ``mdmest`` command line: one entry point, one subcommand per main job.

Each subcommand lives in the module that owns the job and exposes ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``mdmest --help`` stays
fast and the fusion extras are needed only by the fusion subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "mdmest._demo",
        "estimate total correlation on an embedded 3-view Gaussian (no files)",
    ),
    "estimate": (
        "mdmest._estimate_cli",
        "estimate the dependency among views stored in .npz/.npy files",
    ),
    "gaussian": (
        "mdmest.experiments.gaussian",
        "Fig. 1: estimators against the truth on Gaussians",
    ),
    "train": ("mdmest.fusion.cli_train", "train a fusion model with a dependency penalty"),
    "evaluate": (
        "mdmest.fusion.cli_evaluate",
        "evaluate a checkpoint, optionally dropping modalities",
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    from mdmest import __version__

    parser = argparse.ArgumentParser(prog="mdmest", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mdmest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        # No or unknown subcommand: argparse prints the usage (and errors on an unknown name).
        _top_parser().parse_args(argv)
        _top_parser().print_help()
        return 0
    name = argv[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"mdmest {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
