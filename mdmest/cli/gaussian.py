"""``mdmest gaussian``: the paper's Fig. 1 (:mod:`mdmest.experiments.gaussian`) from the command line.

Usage::

    mdmest gaussian --quick                # 18 trainings, one process per core
    mdmest gaussian                        # the full grid
    mdmest gaussian --views 3 --quick      # three views at chosen TC levels
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict

from mdmest.cli._common import (
    UserError,
    add_progress_arguments,
    check_output_folder,
    collected_warnings,
    comma_choices,
    emit_json,
    positive_float,
    positive_int,
    require,
    show_progress,
    stage,
)
from mdmest.experiments.gaussian import (
    FULL,
    MEASURE_LABELS,
    MULTIVIEW_GRID,
    QUICK,
    GaussianConfig,
    format_table,
    make_tasks,
    run_experiment,
    summarize,
    write_results,
)
from mdmest.sampling import SAMPLERS

__all__ = ["add_arguments", "config_from_args", "run"]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mdmest gaussian``."""
    parser.add_argument(
        "--quick", action="store_true", help="small grid and budget (18 trainings of 500 steps)"
    )
    parser.add_argument(
        "--views", type=positive_int, default=2, help="number of views K (default 2)"
    )
    parser.add_argument(
        "--dim", type=positive_int, default=None, help="features per view (default 5)"
    )
    parser.add_argument(
        "--grid",
        type=_floats,
        default=None,
        help="comma-separated ρ values (K=2) or TC levels in nats (K>=3)",
    )
    parser.add_argument(
        "--measures",
        type=comma_choices(tuple(MEASURE_LABELS)),
        default=tuple(MEASURE_LABELS),
        help=f"comma-separated, among {', '.join(MEASURE_LABELS)}",
    )
    parser.add_argument(
        "--seeds", type=positive_int, default=None, help="seeds per point (quick 2, full 3)"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="Adam steps (quick 500, full 1000)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None, help="rows per step (256)")
    parser.add_argument("--lr", type=positive_float, default=None, help="learning rate (2e-3)")
    parser.add_argument(
        "--lr-schedule", choices=["cosine", "none"], default=None, help="default cosine"
    )
    parser.add_argument(
        "--n-samples",
        type=positive_int,
        default=None,
        help="rows per point and seed (quick 10k, full 20k)",
    )
    parser.add_argument(
        "--n-reference", type=positive_int, default=None, help="rows for POT's exact W1"
    )
    parser.add_argument(
        "--sampler", choices=list(SAMPLERS), default=None, help="negative sampler (shifted)"
    )
    parser.add_argument(
        "--negatives", type=positive_int, default=None, help="product rows per joint row (1)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads (default 1: a small critic gains little from more, and on a "
        "shared machine extra threads contend)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="processes training side by side, --threads threads each (default: one per CPU "
        "core this process may use; the records are the same for any number)",
    )
    parser.add_argument(
        "--out", default="results/gaussian", help="output folder (default results/gaussian)"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (needs no matplotlib)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on standard output (the table goes to stderr)",
    )
    add_progress_arguments(parser)


def config_from_args(args: argparse.Namespace) -> GaussianConfig:
    """The configuration of ``--quick`` or the full run, with any option given overriding it."""
    base = QUICK if args.quick else FULL
    grid = args.grid
    if grid is None and args.views != 2:
        grid = MULTIVIEW_GRID["quick" if args.quick else "full"]
    overrides = {
        "views": args.views,
        "dim": args.dim,
        "grid": grid,
        "measures": args.measures,
        "seeds": args.seeds,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "n_samples": args.n_samples,
        "n_reference": args.n_reference,
        "sampler": args.sampler,
        "negatives": args.negatives,
    }
    values = {**asdict(base), **{k: v for k, v in overrides.items() if v is not None}}
    if args.lr_schedule is not None:
        values["lr_schedule"] = None if args.lr_schedule == "none" else args.lr_schedule
    try:
        config = GaussianConfig(**values)
        make_tasks(config)  # every grid point checked now, not after the first point's training
    except (ValueError, TypeError) as error:
        raise UserError(str(error)) from None
    return config


def run(args: argparse.Namespace) -> int:
    """Run the experiment, print the table and write the results; returns the exit status."""
    config = config_from_args(args)
    if not args.no_plot:
        require(("matplotlib", "plots"))
    out = check_output_folder(args.out)
    import torch

    torch.set_num_threads(args.threads)
    runs = len(config.grid) * len(config.measures) * config.seeds
    workers = min(args.workers or _usable_cores(), runs)
    stage(
        args,
        "mdmest gaussian",
        f"training {runs} critic{'s' if runs > 1 else ''} ({config.steps} steps each) in "
        f"{workers} process{'es' if workers > 1 else ''}",
    )
    start = time.perf_counter()
    records = run_experiment(config, progress=show_progress(args), workers=workers)
    summary = summarize(records)
    seconds = time.perf_counter() - start
    paths = write_results(
        records,
        summary,
        config,
        out,
        seconds=seconds,
        plot=not args.no_plot,
        warnings=collected_warnings(),
    )
    text = sys.stderr if args.json else sys.stdout
    print(format_table(summary, config), file=text)
    print(
        f"{len(records)} results in {seconds:.0f} s; wrote " + ", ".join(map(str, paths.values())),
        file=text,
    )
    if args.json:
        emit_json(
            {
                "config": asdict(config),
                "seconds": round(seconds, 1),
                "summary": summary,
                "files": {k: str(v) for k, v in paths.items()},
            },
            None,
        )
    return 0


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
