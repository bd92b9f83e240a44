"""``mdmest evaluate``: metrics of a checkpoint, with modalities dropped at inference, and critic scores.

Example: ``mdmest evaluate --checkpoint runs/ef_lstm-dv-seed0/best.pt --drop text``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from mdmest.cli._common import (
    UserError,
    check_output_folder,
    emit_json,
    positive_int,
    print_metrics,
    require,
)
from mdmest.cli._fusion import add_data_arguments, bound_line, data_spec, fusion_needs, load_data
from mdmest.fusion.base import MODALITIES

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, metavar="PATH", help="best.pt or last.pt of mdmest train"
    )
    parser.add_argument(
        "--drop",
        action="append",
        choices=MODALITIES,
        default=[],
        help="modality to remove at inference (repeatable): its features become zeros; for MAG "
        "models dropped text becomes padding tokens",
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    add_data_arguments(parser, required=False)
    parser.add_argument("--batch-size", type=positive_int, help="default: the training batch size")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the metrics JSON and the critic-score CSV (default: the checkpoint's)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the metrics as JSON on standard output (the text report goes to stderr)",
    )


def _load(args: argparse.Namespace, checkpoint_path: Path):
    from mdmest.fusion.models import model_class
    from mdmest.fusion.training import CheckpointError, Trainer, read_checkpoint

    try:
        checkpoint = read_checkpoint(checkpoint_path)
    except (CheckpointError, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    spec = data_spec(args, checkpoint["metadata"].get("data"))
    name = (checkpoint["model_spec"] or {}).get("name")
    dataset = load_data(spec, text_features=not (name and model_class(name).reads_words))
    if args.split not in dataset:
        raise UserError(f"no split {args.split!r}; the data has {list(dataset)}")
    overrides = {"progress": False, "device": args.device}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    try:
        trainer = Trainer.from_checkpoint(checkpoint_path, dataset, **overrides)
    except (ValueError, TypeError) as error:
        # Raised while the checkpoint is matched to the data and the settings are checked.
        raise UserError(str(error)) from None
    return checkpoint, spec, trainer


def run(args: argparse.Namespace) -> int:
    from mdmest.fusion.training import drop_ratios, write_scores_csv

    checkpoint_path = Path(args.checkpoint)
    drop = tuple(dict.fromkeys(args.drop))
    if set(drop) == set(MODALITIES):
        raise UserError("dropping every modality leaves nothing to evaluate")
    if args.out is not None:
        check_output_folder(args.out)
    require(*fusion_needs(None))
    checkpoint, spec, trainer = _load(args, checkpoint_path)
    if args.out is None:
        check_output_folder(checkpoint_path.parent, "the checkpoint's folder")
    text = sys.stderr if args.json else sys.stdout
    penalty = trainer.config.penalty
    full = trainer.predict(args.split)
    report = {
        "checkpoint": str(checkpoint_path.resolve()),
        "epoch": checkpoint["epoch"],
        "model_spec": checkpoint["model_spec"],
        "data": spec,
        "split": args.split,
        "all": full.metrics(),
        "bound_estimate": trainer.bound_estimate(full),
    }
    with contextlib.redirect_stdout(text):
        print(
            f"{args.split} split, {len(full.ids)} segments, checkpoint epoch {checkpoint['epoch']}"
        )
        print_metrics("all modalities", report["all"])
        line = bound_line(penalty, report["bound_estimate"], args.split)
        if line:
            print(f"                {line}")
        if drop:
            report["dropped"] = list(drop)
            report["corrupted"] = trainer.evaluate(args.split, drop)
            report["ratios"] = drop_ratios(report["corrupted"], report["all"])
            print_metrics(f"without {'+'.join(drop)}", report["corrupted"])
            print_metrics("Acc-2(corrupted)/Acc-2(all)", report["ratios"])

    out_dir = Path(args.out) if args.out else checkpoint_path.parent
    suffix = f"-no-{'-'.join(drop)}" if drop else ""
    if full.scores is not None:
        scores_path = out_dir / f"critic_scores_{args.split}.csv"
        write_scores_csv(full, scores_path)
        report["critic_scores"] = str(scores_path)
        print(f"critic scores (highest = modalities agree): {scores_path}", file=text)
    else:
        print("no critic scores: the model was trained without a penalty", file=sys.stderr)
    metrics_path = out_dir / f"evaluation_{checkpoint_path.stem}_{args.split}{suffix}.json"
    report["metrics_file"] = str(metrics_path)
    emit_json(report, metrics_path)
    print(f"metrics: {metrics_path}", file=text)
    if args.json:
        emit_json(report, None)
    return 0
