"""``mdmest reproduce``: the paper's claims C1-C4 over many seeds, with paired significance tests.

Example: ``mdmest reproduce --data breast_cancer --seeds 10 --workers 2 --out results/bc``.
Data sources (``--data``): a MAG-BERT / MMSA / MISA file of yours (its own splits), ``mosi229``
(the 229 real MOSI segments, repeated 5-fold cross-validation), ``planted:NOISE`` (synthetic data
whose only cross-modal dependency is the label), ``breast_cancer`` (scikit-learn's table as three
views, model ``mlp``), ``synthetic:mosi``. Finished runs are cached under ``OUT/runs`` by the hash
of their configuration: rerunning resumes and never trains a finished run twice.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from mdmest.cli._common import (
    UserError,
    add_progress_arguments,
    check_output_folder,
    key_value,
    non_negative_float,
    non_negative_int,
    positive_int,
    require,
    show_progress,
)

__all__ = ["add_arguments", "run"]


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(non_negative_float(v) for v in text.split(",") if v.strip())
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"weights: {error}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated weights, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _scoped_option(scope: str):
    def parse(text: str) -> tuple[str, str, object]:
        name, sep, rest = text.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected {scope}:KEY=VALUE, got {text!r}")
        key, value = key_value(rest)
        return name, key, value

    return parse


def _by_name(options: list[tuple[str, str, object]]) -> dict[str, dict]:
    grouped: dict[str, dict] = {}
    for name, key, value in options:
        grouped.setdefault(name, {})[key] = value
    return grouped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="a dataset file/folder, mosi229[:PATH], planted:NOISE, breast_cancer or synthetic:mosi",
    )
    parser.add_argument(
        "--models",
        type=_names,
        help="comma-separated (default: ef_lstm,mfn,lmf,tfn,mag_bert,mag_xlnet; mlp for breast_cancer)",
    )
    parser.add_argument(
        "--penalties",
        type=_names,
        default=("none", "dv", "f", "wasserstein"),
        help="comma-separated, must include none (default none,dv,f,wasserstein)",
    )
    parser.add_argument(
        "--seeds", type=_count, default=10, help="number of seeds, >= 5 (default 10)"
    )
    parser.add_argument(
        "--first-seed", type=non_negative_int, default=0, help="seeds are FIRST..FIRST+N-1"
    )
    parser.add_argument(
        "--weights",
        type=_floats,
        default=(0.01, 0.1, 1.0),
        help="penalty-weight grid, chosen per seed on validation (default 0.01,0.1,1)",
    )
    parser.add_argument(
        "--folds", type=_count, help="K of repeated K-fold (default 5 for mosi229, else 0)"
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=20, help="maximum epochs (default 20)"
    )
    parser.add_argument(
        "--patience", type=positive_int, default=5, help="early stopping (default 5)"
    )
    parser.add_argument("--max-steps-per-epoch", type=positive_int)
    parser.add_argument(
        "--measure-option",
        type=_scoped_option("PENALTY"),
        action="append",
        default=[],
        metavar="P:KEY=VALUE",
        help="measure keyword for one penalty, e.g. wasserstein:normalize=false (repeatable)",
    )
    parser.add_argument(
        "--model-option",
        type=_scoped_option("MODEL"),
        action="append",
        default=[],
        metavar="M:KEY=VALUE",
        help="constructor keyword replacing a model's preset, e.g. ef_lstm:num_layers=1 (repeatable)",
    )
    parser.add_argument(
        "--data-option",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword of the data generator (planted, synthetic), e.g. n_train=800",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="parallel processes (1 thread each)"
    )
    parser.add_argument(
        "--out", default="results/reproduce", help="report folder (default results/reproduce)"
    )
    parser.add_argument("--cache", help="run cache folder (default OUT/runs)")
    parser.add_argument("--device", default="cpu", help="torch device of every run (default cpu)")
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mdmest._validation import check_device
    from mdmest.fusion.reproduce import MIN_SEEDS, ReproduceError, reproduce

    try:
        check_device(args.device)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.seeds < MIN_SEEDS:
        raise UserError(f"--seeds must be at least {MIN_SEEDS} for a paired test, got {args.seeds}")
    require(*_needs(args))
    check_output_folder(args.out)
    if args.cache is not None:
        check_output_folder(args.cache, "--cache")
    try:
        analysis = reproduce(
            args.data,
            models=args.models,
            penalties=args.penalties,
            seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
            weights=args.weights,
            folds=args.folds,
            epochs=args.epochs,
            patience=args.patience,
            max_steps_per_epoch=args.max_steps_per_epoch,
            measure_kwargs=_by_name(args.measure_option),
            model_kwargs=_by_name(args.model_option),
            data_options=dict(args.data_option),
            out=args.out,
            cache=args.cache,
            workers=args.workers,
            device=args.device,
            progress=show_progress(args),
            log=lambda line: print(line, file=sys.stderr),
            command="mdmest reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        )
    except ReproduceError as error:
        raise UserError(str(error)) from None
    for claim, verdict in analysis["overall"].items():
        print(f"{claim}: {verdict}")
    return 0


def _needs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The optional packages of the request: scikit-learn (metrics, the breast_cancer table),
    matplotlib (the report's Fig. 2), transformers for MAG models named on the command line (a
    default MAG model without its backbone is skipped with a note)."""
    from mdmest.cli._fusion import fusion_needs

    needs = [*fusion_needs(None), ("matplotlib", "the report's figure (Fig. 2)")]
    for model in args.models or ():
        needs += [need for need in fusion_needs(model) if need not in needs]
    return needs
