"""``mdmest train``: train a fusion model with a dependency penalty, with checkpoints and resume.

Example: ``mdmest train --model ef_lstm --penalty wasserstein --weight 0.1 --data synthetic:mosi``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from mdmest.cli._common import (
    UserError,
    add_progress_arguments,
    check_output_folder,
    emit_json,
    key_value,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_metrics,
    require,
    show_progress,
    torchrun_session,
)
from mdmest.cli._fusion import add_data_arguments, bound_line, data_spec, fusion_needs, load_data

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mdmest.fusion.models import model_names
    from mdmest.fusion.training import PENALTIES, PRESETS, TASK_LOSSES, TrainConfig

    defaults = TrainConfig()
    parser.add_argument("--model", required=True, choices=model_names(), help="fusion model")
    parser.add_argument(
        "--penalty",
        choices=PENALTIES,
        default=defaults.penalty,
        help=f"dependency measure added to the task loss (default: {defaults.penalty})",
    )
    parser.add_argument(
        "--weight",
        type=non_negative_float,
        default=defaults.penalty_weight,
        help=f"λ in task loss + λ·measure(z_text, z_audio, z_video) (default "
        f"{defaults.penalty_weight})",
    )
    add_data_arguments(parser, required=True)
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="hyperparameter preset of the model (default: the data set's own, else mosi)",
    )
    parser.add_argument("--epochs", type=positive_int, help="maximum epochs (default: the preset)")
    parser.add_argument("--batch-size", type=positive_int, help="default: the model's preset")
    parser.add_argument("--lr", type=positive_float, help="default: the model's preset")
    parser.add_argument("--weight-decay", type=non_negative_float, help="default: the preset")
    parser.add_argument("--task-loss", choices=tuple(TASK_LOSSES), help="default: the preset")
    parser.add_argument(
        "--critic-lr",
        type=positive_float,
        default=defaults.critic_lr,
        help=f"critic's learning rate ({defaults.critic_lr})",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=defaults.patience,
        help=f"stop after this many epochs without better validation {defaults.select_on} "
        f"(default {defaults.patience})",
    )
    parser.add_argument(
        "--max-steps-per-epoch", type=positive_int, help="cap the steps per epoch (quick runs)"
    )
    parser.add_argument(
        "--measure-option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="option of the measure, e.g. divergence=js (f), negatives=4, normalize=false "
        "(Wasserstein; on by default for models whose representations are unbounded) "
        "(repeatable)",
    )
    parser.add_argument(
        "--model-option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument of the model replacing the preset's, e.g. hidden_dim=64",
    )
    parser.add_argument(
        "--backbone", metavar="PATH", help="local BERT / XLNet checkpoint folder (MAG models)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=defaults.seed, help="seed of everything random"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder for best.pt, last.pt and metrics.json (default runs/MODEL-PENALTY-seedS)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    parser.add_argument("--device", default=defaults.device, help="torch device (default cpu)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on standard output (the text report goes to stderr)",
    )
    add_progress_arguments(parser)


def _preset(args: argparse.Namespace, dataset) -> str:
    if args.preset is not None:
        return args.preset
    if getattr(dataset, "preset", None) is not None:
        return dataset.preset
    print("preset: mosi (the data does not say which corpus it is; pass --preset)", file=sys.stderr)
    return "mosi"


def _build(args: argparse.Namespace, out_dir: Path):
    from mdmest.fusion.models import build_model, model_class
    from mdmest.fusion.training import TrainConfig, Trainer, seed_everything

    uses_words = model_class(args.model).reads_words
    if args.backbone is not None and not uses_words:
        raise UserError(f"--backbone applies to models that read words only, not {args.model}")
    spec = data_spec(args)
    dataset = load_data(spec, text_features=not uses_words)
    preset = _preset(args, dataset)
    try:
        config = TrainConfig.for_model(
            args.model,
            preset,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            task_loss=args.task_loss,
            penalty=args.penalty,
            penalty_weight=args.weight,
            measure_kwargs=dict(args.measure_option),
            critic_lr=args.critic_lr,
            patience=args.patience,
            max_steps_per_epoch=args.max_steps_per_epoch,
            seed=args.seed,
            progress=show_progress(args),
            device=args.device,
        )
        d_text, d_audio, d_video = dataset.dims
        model_spec: dict[str, Any] = {
            "name": args.model,
            "text_dim": d_text,
            "audio_dim": d_audio,
            "video_dim": d_video,
            "dataset": preset,
            **dict(args.model_option),
        }
        if args.backbone is not None:
            model_spec["backbone"] = str(Path(args.backbone).expanduser().resolve())
        seed_everything(args.seed)
        trainer = Trainer(
            build_model(**model_spec),
            dataset,
            config,
            out_dir=out_dir,
            model_spec=model_spec,
            metadata={"data": spec},
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        # Raised while the settings are checked and the model is built, before any training.
        raise UserError(str(error)) from None
    return spec, dataset, config, trainer


def run(args: argparse.Namespace) -> int:
    """Train; under ``torchrun --nproc-per-node N`` every rank trains its part of each batch
    (DDP, the measure's product rows from the global batch) and rank 0 prints and writes."""

    with torchrun_session(args.device):
        return _run(args)


def default_run_dir(model: str, penalty: str, seed: int) -> Path:
    """Where ``mdmest train`` writes without ``--out``: ``runs/MODEL-PENALTY-seedSEED``."""
    return Path("runs") / f"{model}-{penalty}-seed{seed}"


def _run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out) if args.out else default_run_dir(args.model, args.penalty, args.seed)
    if (out_dir / "last.pt").exists() and not args.resume:
        raise UserError(
            f"{out_dir} already holds a run; pass --resume to continue it or choose --out"
        )
    if args.resume and not (out_dir / "last.pt").is_file():
        raise UserError(f"--resume: {out_dir / 'last.pt'} does not exist; nothing to continue")
    check_output_folder(out_dir)
    require(*fusion_needs(args.model, backbone=args.backbone, options=dict(args.data_option)))
    text = sys.stderr if args.json else sys.stdout
    spec, dataset, config, trainer = _build(args, out_dir)
    features = dict(zip(("text", "audio", "video"), dataset.dims))
    print(
        f"training {args.model} (penalty {config.penalty}, weight {config.penalty_weight}"
        + (f", {trainer.config.measure_kwargs}" if trainer.config.measure_kwargs else "")
        + f") on {spec['path']} {dict((s, len(dataset[s])) for s in dataset)}, features "
        f"{features}; writing to {out_dir}",
        file=text,
    )
    summary = trainer.fit(resume=args.resume)
    print(
        f"{summary['epochs_run']} epochs"
        + (" (stopped early)" if summary["stopped_early"] else "")
        + f"; best epoch {summary['best_epoch']} by validation {config.select_on}",
        file=text,
    )
    best = next((e for e in trainer.history if e["epoch"] == summary["best_epoch"]), None)
    valid_bound = best and best.get("bound_estimate")
    test_bound = None
    with contextlib.redirect_stdout(text):
        if summary["best_valid"] is not None:
            print_metrics("valid", summary["best_valid"])
            line = bound_line(config.penalty, valid_bound, "valid")
            if line:
                print(f"       {line}")
        if summary["test"] is not None:
            print_metrics("test ", summary["test"])
            if config.penalty != "none":
                test_bound = trainer.bound_estimate(trainer.predict("test"))
                print(f"       {bound_line(config.penalty, test_bound, 'test')}")
    best_path, last_path, metrics_path = (
        out_dir / n for n in ("best.pt", "last.pt", "metrics.json")
    )
    print(f"metrics: {metrics_path}; last epoch: {last_path}", file=text)
    print("best checkpoint (for mdmest evaluate --checkpoint):", file=text)
    if args.json:
        emit_json(
            {
                "model": args.model,
                "penalty": config.penalty,
                "weight": config.penalty_weight,
                "data": spec,
                **{k: summary.get(k) for k in ("epochs_run", "stopped_early", "best_epoch")},
                "valid": summary["best_valid"],
                "test": summary["test"],
                "bound_estimate": {"valid": valid_bound, "test": test_bound},
                "checkpoint": str(best_path),
                "last": str(last_path),
                "metrics": str(metrics_path),
            },
            None,
        )
    # Last, alone on its line: what `mdmest evaluate --checkpoint` takes (`| tail -n 1`).
    print(best_path, file=text)
    return 0
