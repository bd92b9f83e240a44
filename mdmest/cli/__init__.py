"""The ``mdmest`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only
when its subcommand runs, so ``mdmest --help`` stays fast and the fusion extras are needed only by the
fusion subcommands. A user error is one line ``mdmest <command>: error: ...`` on stderr with exit
status 2 (`mdmest.cli._common`), a warning one line ``mdmest <command>: warning: ...``; a
traceback means a bug.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from mdmest.cli._common import Parser, UserError, fail, one_line_warnings

__all__ = ["SUBCOMMANDS", "main"]

#: Subcommand name -> (module, one-line help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "mdmest.cli.demo",
        "estimate total correlation on an embedded 3-view Gaussian (no files)",
    ),
    "estimate": (
        "mdmest.cli.estimate",
        "estimate the dependency among views stored in .npz/.npy files",
    ),
    "gaussian": ("mdmest.cli.gaussian", "Fig. 1: estimators against the truth on Gaussians"),
    "train": ("mdmest.cli.train", "train a fusion model with a dependency penalty"),
    "evaluate": ("mdmest.cli.evaluate", "evaluate a checkpoint, optionally dropping modalities"),
    "reproduce": (
        "mdmest.cli.reproduce",
        "the paper's claims C1-C4 over many seeds, with significance tests",
    ),
}


def _top_parser() -> Parser:
    from mdmest import __version__

    parser = Parser(
        prog="mdmest",
        description="Multivariate neural dependency measures: estimate them, train with them, "
        "reproduce the paper.",
    )
    parser.add_argument("--version", action="version", version=f"mdmest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mdmest`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        # No or unknown subcommand: the top parser prints the usage or the one-line error.
        _top_parser().parse_args(argv)
        _top_parser().print_help()
        return 0
    name = argv[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = Parser(prog=f"mdmest {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        with one_line_warnings(parser.prog):
            return int(module.run(args) or 0)
    except UserError as error:
        return _error_status(parser.prog, str(error))
    except ModuleNotFoundError as error:
        # An optional package that a check before the work did not name: still one line.
        message = _missing_extra(error)
        if message is None:
            raise
        return _error_status(parser.prog, message)
    except MemoryError as error:
        detail = " ".join(str(error).split()) or "allocation failed"
        return _error_status(parser.prog, f"not enough memory for these sizes ({detail})")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def _error_status(prog: str, message: str) -> int:
    try:
        fail(prog, message)
    except SystemExit as exit:
        return int(exit.code)


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    from mdmest._validation import EXTRAS

    top = (error.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    package, extra = EXTRAS[top]
    return f"this needs {package}, which is not installed: pip install 'mdmest[{extra}]'"
