"""``mdmest train``: train a fusion model with a dependency penalty, with checkpoints and resume.

Example: ``mdmest train --model ef_lstm --penalty wasserstein --weight 0.1 --data synthetic:mosi``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mdmest.fusion.base import MODALITIES

# Kept free of heavy imports: mdmest.cli builds this parser before anything is trained.
PENALTY_CHOICES = ("none", "dv", "f", "wasserstein")
MAG_MODELS = ("mag_bert", "mag_xlnet")
# Models whose representations are not bounded (docs/fusion-models.md, docs/fusion-mag.md): W_1
# grows with their scale, so the Wasserstein penalty standardises each view unless told otherwise.
UNBOUNDED_REPRESENTATIONS = ("tfn", "lmf", *MAG_MODELS)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def key_value(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; VALUE is read as JSON when it parses (``4``, ``true``, ``[1, 2]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with a Python name as KEY, got {text!r}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def model_name(text: str) -> str:
    from mdmest.fusion.models import model_names

    names = model_names()
    if text not in names:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; valid names: {', '.join(names)}")
    return text


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The options that say which data to read (shared with ``mdmest evaluate``)."""
    from mdmest.fusion.data import FORMATS

    parser.add_argument(
        "--data",
        required=required,
        metavar="PATH",
        help="dataset file or folder (MAG-BERT, MMSA or MISA pickle), or synthetic:mosi / "
        "synthetic:mosei (generated in memory)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="file format (default: auto)"
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed that divides a single-split file (e.g. 229 MOSI segments) into "
        "train/valid/test 70/15/15 (default 0)",
    )
    parser.add_argument(
        "--data-option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="option of the synthetic generator, e.g. n_train=64 or dependency=0.5 (repeatable)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        type=model_name,
        help="ef_lstm, tfn, lmf, mfn, mag_bert or mag_xlnet",
    )
    parser.add_argument(
        "--penalty",
        choices=PENALTY_CHOICES,
        default="none",
        help="dependency measure added to the task loss (default: none)",
    )
    parser.add_argument(
        "--weight",
        type=non_negative_float,
        default=0.1,
        help="λ in task loss + λ·measure(z_text, z_audio, z_video) (default 0.1)",
    )
    add_data_arguments(parser, required=True)
    parser.add_argument(
        "--preset",
        choices=("mosi", "mosei"),
        default=None,
        help="hyperparameter preset of the model (default: mosei if the data's name says so)",
    )
    parser.add_argument("--epochs", type=positive_int, help="maximum epochs (default 40)")
    parser.add_argument("--batch-size", type=positive_int, help="default: the model's preset")
    parser.add_argument("--lr", type=positive_float, help="default: the model's preset")
    parser.add_argument("--weight-decay", type=non_negative_float, help="default: the preset")
    parser.add_argument("--task-loss", choices=("l1", "mse"), help="default: mse for MAG, else l1")
    parser.add_argument(
        "--critic-lr", type=positive_float, default=1e-4, help="critic's learning rate (1e-4)"
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=8,
        help="stop after this many epochs without better validation MAE (default 8)",
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
        "(Wasserstein; on by default for tfn, lmf and MAG, whose representations are unbounded) "
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
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random (0)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder for best.pt, last.pt and metrics.json (default runs/MODEL-PENALTY-seedS)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def data_spec(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """How to reload the data: the command-line options, falling back on ``saved`` ones."""
    saved = saved or {}
    path = args.data if args.data is not None else saved.get("path")
    if path is None:
        raise ValueError("no --data given and the checkpoint does not say where its data came from")
    if not str(path).startswith("synthetic:"):
        path = str(Path(path).expanduser().resolve())
    return {
        "path": str(path),
        "format": args.format or saved.get("format", "auto"),
        "split_seed": args.split_seed
        if args.split_seed is not None
        else saved.get("split_seed", 0),
        "options": dict(args.data_option) if args.data_option else saved.get("options", {}),
    }


def load_data(spec: dict[str, Any], *, text_features: bool) -> Any:
    """Load the dataset of ``spec``; divide a single-split file; embed words when needed.

    Parameters
    ----------
    spec : dict
        From :func:`data_spec`.
    text_features : bool
        Compute MiniLM word features when the data has words only (every model but MAG).
    """
    from mdmest.fusion.data import load_dataset

    dataset = load_dataset(spec["path"], spec["format"], **spec["options"])
    if len(dataset) == 1:
        (name,) = dataset
        dataset = dataset.split(seed=spec["split_seed"])
        sizes = "/".join(str(len(dataset[s])) for s in ("train", "valid", "test"))
        print(
            f"one split ({name!r}) divided into train/valid/test = {sizes} with seed "
            f"{spec['split_seed']}",
            file=sys.stderr,
        )
    missing = [split for split in ("train", "valid") if split not in dataset]
    if missing:
        raise ValueError(f"{spec['path']} has splits {list(dataset)}; training needs {missing}")
    if text_features and dataset.d_text is None:
        print("embedding the words with MiniLM (offline) ...", file=sys.stderr)
        dataset = dataset.with_text_features("minilm")
    return dataset


def error(command: str, message: str) -> int:
    """Report a usage error the way argparse does and return its exit status."""
    print(f"mdmest {command}: error: {message}", file=sys.stderr)
    return 2


def print_metrics(title: str, metrics: dict[str, float]) -> None:
    print(f"{title}: " + "  ".join(f"{name} {value:.4f}" for name, value in metrics.items()))


def run(args: argparse.Namespace) -> int:
    from mdmest.fusion.trainer import (
        TrainConfig,
        Trainer,
        build_model,
        default_training,
        seed_everything,
    )

    is_mag = args.model in MAG_MODELS
    if args.backbone is not None and not is_mag:
        return error("train", f"--backbone applies to {', '.join(MAG_MODELS)} only")
    out_dir = Path(args.out or f"runs/{args.model}-{args.penalty}-seed{args.seed}")
    if (out_dir / "last.pt").exists() and not args.resume:
        return error(
            "train", f"{out_dir} already holds a run; pass --resume to continue it or choose --out"
        )
    try:
        spec = data_spec(args)
        dataset = load_data(spec, text_features=not is_mag)
        preset = args.preset or ("mosei" if "mosei" in spec["path"].lower() else "mosi")
        defaults = default_training(args.model, preset)
        config = TrainConfig(
            epochs=args.epochs or int(defaults.get("epochs", 40)),
            batch_size=args.batch_size or int(defaults.get("batch_size", 32)),
            lr=args.lr or float(defaults.get("lr", 1e-3)),
            weight_decay=(
                args.weight_decay
                if args.weight_decay is not None
                else float(defaults.get("weight_decay", 0.0))
            ),
            task_loss=args.task_loss or ("mse" if is_mag else "l1"),
            penalty=args.penalty,
            penalty_weight=args.weight,
            measure_kwargs=dict(args.measure_option),
            critic_lr=args.critic_lr,
            patience=args.patience,
            max_steps_per_epoch=args.max_steps_per_epoch,
            warmup_fraction=float(defaults.get("warmup_fraction", 0.1)),
            seed=args.seed,
            progress=not args.no_progress,
            device=args.device,
        )
        if config.penalty == "wasserstein" and args.model in UNBOUNDED_REPRESENTATIONS:
            config.measure_kwargs.setdefault("normalize", True)
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
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        return error("train", str(exc))

    dims = dict(zip(MODALITIES, dataset.dims))
    print(
        f"training {args.model} (penalty {args.penalty}, weight {args.weight}"
        + (f", {config.measure_kwargs}" if config.measure_kwargs else "")
        + f") on {spec['path']} "
        f"{dict((s, len(dataset[s])) for s in dataset)}, features {dims}; writing to {out_dir}"
    )
    summary = trainer.fit(resume=args.resume)
    print(
        f"{summary['epochs_run']} epochs"
        + (" (stopped early)" if summary["stopped_early"] else "")
        + f"; best epoch {summary['best_epoch']} by validation {config.select_on}"
    )
    if summary["best_valid"] is not None:
        print_metrics("valid", summary["best_valid"])
    if summary["test"] is not None:
        print_metrics("test ", summary["test"])
    print(
        f"checkpoints: {out_dir / 'best.pt'}, {out_dir / 'last.pt'}; metrics: "
        f"{out_dir / 'metrics.json'}"
    )
    return 0
