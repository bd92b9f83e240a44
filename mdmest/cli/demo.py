"""``mdmest demo``: estimate total correlation on an embedded 3-view Gaussian and print it beside
the closed-form truth. Needs no files."""

from __future__ import annotations

import argparse

from mdmest.cli._common import (
    UserError,
    add_progress_arguments,
    non_negative_float,
    non_negative_int,
    positive_int,
    show_progress,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tc", type=non_negative_float, default=1.0, help="true total correlation in nats (1.0)"
    )
    parser.add_argument(
        "--dims",
        type=positive_int,
        nargs="+",
        default=[4, 4, 4],
        help="features per view, one number per view, at least 2 views (4 4 4)",
    )
    parser.add_argument("--samples", type=positive_int, default=20000, help="rows drawn (20000)")
    parser.add_argument("--steps", type=positive_int, default=2000, help="critic steps (2000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (>= 0)")
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import mdmest
    from mdmest.tasks import gaussian_task_with_tc

    if len(args.dims) < 2:
        raise UserError(f"--dims needs one number per view and at least 2 views, got {args.dims}")
    try:
        task = gaussian_task_with_tc(args.tc, args.dims)
    except ValueError as error:
        raise UserError(str(error)) from None
    views = task.sample(args.samples, seed=args.seed)
    print(f"{len(args.dims)} Gaussian views, dims {tuple(args.dims)}, {args.samples} samples")
    print(f"{'measure':<28}{'estimate':>10}{'± s.e.':>9}{'truth':>10}  (nats)")
    for name, label in [("dv", "Donsker-Varadhan TC"), ("f", "f-divergence TC (KL)")]:
        try:
            result = mdmest.estimate(
                views, name, steps=args.steps, seed=args.seed, progress=show_progress(args)
            )
        except mdmest.EstimateInputError as error:
            raise UserError(str(error)) from None
        print(
            f"{label:<28}{result.value:>10.3f}{result.stderr:>9.3f}{task.total_correlation:>10.3f}"
        )
    print(f"held-out rows: {result.n_test} (of {args.samples})")
    return 0
