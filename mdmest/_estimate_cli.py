"""``mdmest estimate``: the dependency among views stored in files.

Views come from one ``.npz`` (``--keys`` picks arrays, default: all, in file order) or from several
``.npy`` files, one per view; rows must be paired across views.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import mdmest
from mdmest._io import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="one .npz, or one .npy per view")
    parser.add_argument("--keys", nargs="+", help="arrays of the .npz to use as views, in order")
    parser.add_argument("--measure", default="dv", choices=sorted(mdmest.measures.MEASURES))
    parser.add_argument("--divergence", default=None, help='f-divergence for --measure f ("kl"...)')
    parser.add_argument(
        "--lipschitz", default=None, help="for wasserstein: gradient_penalty|spectral_norm"
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--negatives",
        type=_negatives,
        default=None,
        help='product rows per joint row: an int, or "auto" (default for dv and f: grow with the '
        "dependency)",
    )
    parser.add_argument(
        "--decomposition",
        choices=["tree", "chain"],
        default=None,
        help="for dv and f: the TC as a sum of two-group MIs, one critic each",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="the critic's decoupled weight decay (AdamW); 0: plain Adam",
    )
    parser.add_argument(
        "--thorough",
        action="store_true",
        help="for dv and f: the most accurate setting, at twice the training (also trains the "
        "alternative the first value points to, keeps the larger value)",
    )
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--no-progress", action="store_true")


def _negatives(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an int or "auto", got {text!r}') from None


def load_views(files: list[Path], keys: list[str] | None) -> tuple[list[str], list[np.ndarray]]:
    for path in files:
        if not path.is_file():
            raise SystemExit(f"mdmest estimate: no such file: {path}")
    if len(files) == 1 and files[0].suffix == ".npz":
        with np.load(files[0], allow_pickle=False) as archive:
            names = list(keys or archive.files)
            missing = [k for k in names if k not in archive.files]
            if missing:
                raise SystemExit(
                    f"mdmest estimate: {files[0]} has no array {missing[0]!r}; it has {archive.files}"
                )
            return names, [archive[k] for k in names]
    if any(p.suffix != ".npy" for p in files):
        raise SystemExit("mdmest estimate: give one .npz file, or one .npy file per view")
    return [p.stem for p in files], [np.load(p, allow_pickle=False) for p in files]


def run(args: argparse.Namespace) -> int:
    names, views = load_views(args.files, args.keys)
    if len(views) < 2:
        raise SystemExit(f"mdmest estimate: need at least 2 views, got {len(views)} ({names})")
    views = [v.reshape(len(v), -1) if v.ndim != 2 else v for v in views]
    options = {
        "negatives": args.negatives,
        "names": names,
        "decomposition": args.decomposition,
        "thorough": args.thorough,
        "weight_decay": args.weight_decay,
    }
    if args.divergence:
        options["divergence"] = args.divergence
    if args.lipschitz:
        options["lipschitz"] = args.lipschitz
    result = mdmest.estimate(
        views,
        args.measure,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        test_fraction=args.test_fraction,
        seed=args.seed,
        progress=not args.no_progress,
        **options,
    )
    print(f"{args.measure} estimate over views {names}: {result.value:.4f}")
    if args.out:
        record = {
            "measure": args.measure,
            "views": names,
            "dims": [int(v.shape[1]) for v in views],
            "value": result.value,
            "negatives": result.measure.negatives,
            "decomposition": getattr(result.measure, "decomposition", None),
            "candidates": result.candidates,
            "final_train_bound": float(result.history[-100:].mean()),
            "options": {k: v for k, v in vars(args).items() if k not in ("files", "out")},
        }
        atomic_write_text(args.out, json.dumps(record, indent=2, default=str))
    return 0
