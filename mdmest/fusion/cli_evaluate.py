"""``mdmest evaluate``: metrics of a checkpoint, with modalities dropped at inference, and critic scores.

Example: ``mdmest evaluate --checkpoint runs/ef_lstm-dv-seed0/best.pt --drop text``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdmest.fusion.base import MODALITIES
from mdmest.fusion.cli_train import (
    add_data_arguments,
    data_spec,
    error,
    load_data,
    positive_int,
    print_metrics,
)


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


def run(args: argparse.Namespace) -> int:
    from mdmest.fusion.cli_train import MAG_MODELS
    from mdmest.fusion.trainer import (
        Trainer,
        drop_ratios,
        read_checkpoint,
        write_json,
        write_scores_csv,
    )

    checkpoint_path = Path(args.checkpoint)
    drop = tuple(dict.fromkeys(args.drop))
    if set(drop) == set(MODALITIES):
        return error("evaluate", "dropping every modality leaves nothing to evaluate")
    try:
        checkpoint = read_checkpoint(checkpoint_path)
        spec = data_spec(args, checkpoint["metadata"].get("data"))
        is_mag = (checkpoint["model_spec"] or {}).get("name") in MAG_MODELS
        dataset = load_data(spec, text_features=not is_mag)
        if args.split not in dataset:
            raise ValueError(f"no split {args.split!r}; the data has {list(dataset)}")
        overrides = {"progress": False, "device": args.device}
        if args.batch_size is not None:
            overrides["batch_size"] = args.batch_size
        trainer = Trainer.from_checkpoint(checkpoint_path, dataset, **overrides)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        return error("evaluate", str(exc))

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
    print(f"{args.split} split, {len(full.ids)} segments, checkpoint epoch {checkpoint['epoch']}")
    print_metrics("all modalities", report["all"])
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
        print(f"critic scores (highest = modalities agree): {scores_path}")
    else:
        print("no critic scores: the model was trained without a penalty", file=sys.stderr)
    metrics_path = out_dir / f"evaluation_{checkpoint_path.stem}_{args.split}{suffix}.json"
    write_json(metrics_path, report)
    print(f"metrics: {metrics_path}")
    return 0
