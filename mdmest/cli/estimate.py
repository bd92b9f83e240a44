"""``mdmest estimate``: the dependency among views stored in files.

Views come from one ``.npz`` (``--keys`` picks arrays, default: all, in file order) or from several
``.npy`` files, one per view; rows must be paired across views. Each view is 1-d (one feature) or
2-d (rows, features), as in :func:`mdmest.estimate`; integer and boolean arrays are read as floats.

Every user error (a bad option, a file that cannot be read, views that :func:`mdmest.estimate`
rejects) is named before any training in one line, ``mdmest estimate: error: ...`` on stderr, with
exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

import mdmest
from mdmest.cli._common import (
    UserError,
    add_output_arguments,
    add_progress_arguments,
    check_output_file,
    emit_json,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    show_progress,
    torchrun_session,
)
from mdmest.functional import DIVERGENCES
from mdmest.measures import LIPSCHITZ_METHODS, MEASURES
from mdmest.transforms import TRANSFORMS

__all__ = ["add_arguments", "run", "load_views"]

TRANSFORM_CHOICES = ("auto", *TRANSFORMS, "none")
#: The unit of each measure's value.
UNITS = {"dv": "nats", "f": "nats", "wasserstein": "W1 units"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first bytes (with members, empty)
_NPY_MAGIC = b"\x93NUMPY"
_READ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="one .npz, or one .npy per view")
    parser.add_argument("--keys", nargs="+", help="arrays of the .npz to use as views, in order")
    parser.add_argument("--measure", default="dv", choices=sorted(MEASURES))
    parser.add_argument(
        "--divergence", default=None, choices=DIVERGENCES, help="for --measure f (default: kl)"
    )
    parser.add_argument(
        "--lipschitz",
        default=None,
        choices=LIPSCHITZ_METHODS,
        help="for --measure wasserstein (default: gradient_penalty)",
    )
    parser.add_argument(
        "--transform",
        default="auto",
        choices=TRANSFORM_CHOICES,
        help="per-view map fitted on the training rows: auto (per_view for dv and f, scale for "
        "wasserstein), per_view (whitened_copula or radial, whichever leaves each view closer "
        "to normal), whitened_copula, copula (per feature only), radial (whitened, its radius "
        "made normal), scale (centred, one common scale, the value in the views' units), or "
        "none (the rows as given)",
    )
    parser.add_argument("--steps", type=positive_int, default=2000)
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="the critic's learning rate (default: 3e-3 for dv and f with kl, else 1e-3)",
    )
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
        type=non_negative_float,
        default=0.0,
        help="the critic's decoupled weight decay (AdamW); 0: plain Adam",
    )
    parser.add_argument(
        "--thorough",
        action="store_true",
        help="for dv and f: the most accurate setting, at twice the training (also trains the "
        "alternative the first value points to, keeps the larger value)",
    )
    parser.add_argument(
        "--no-refit",
        action="store_true",
        help="for dv and f: only the trained critic is a candidate (by default refits where it "
        "overfits or still learns, and two bounds that need no training, are candidates too; the "
        "one with the highest validation value is chosen and read on the test rows)",
    )
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (>= 0)")
    parser.add_argument(
        "--device", default="cpu", help="torch device of the critic, e.g. cuda (default cpu)"
    )
    add_output_arguments(parser)
    add_progress_arguments(parser)


def _negatives(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an int or "auto", got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected an int >= 1 or "auto", got {text!r}')
    return value


# -- reading the views ------------------------------------------------------------------------------
def load_views(files: list[Path], keys: list[str] | None) -> tuple[list[str], list[np.ndarray]]:
    """The views' names and arrays; a file that cannot be read raises :class:`UserError`."""
    for path in files:
        if not path.exists():
            raise UserError(f"no such file: {path}")
        if not path.is_file():
            raise UserError(f"not a file: {path}")
    if len(files) == 1 and files[0].suffix == ".npz":
        return _load_npz(files[0], keys)
    if any(p.suffix != ".npy" for p in files):
        got = ", ".join(str(p) for p in files)
        raise UserError(f"give one .npz file, or one .npy file per view; got {got}")
    if keys:
        raise UserError("--keys picks arrays of one .npz file; with .npy files each file is a view")
    return [p.stem for p in files], [_load_npy(p) for p in files]


def _check_magic(path: Path, magic: tuple[bytes, ...], what: str) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    if not head:
        raise UserError(f"{path} is empty")
    if not head.startswith(magic):
        raise UserError(f"{path} is not a {what}")


def _read_error(path: Path, error: BaseException, key: str | None = None) -> UserError:
    where = f"array {key!r} of {path}" if key is not None else str(path)
    hint = ""
    if "allow_pickle" in str(error):
        hint = " (mdmest estimate reads numeric arrays only, never pickled objects)"
    message = " ".join(str(error).split()) or type(error).__name__
    return UserError(f"cannot read {where}: {message}{hint}")


def _load_npz(path: Path, keys: list[str] | None) -> tuple[list[str], list[np.ndarray]]:
    _check_magic(path, _ZIP_MAGIC, ".npz file (a zip archive of .npy arrays)")
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as error:
        raise _read_error(path, error) from None
    with archive:
        if not archive.files:
            raise UserError(f"{path} holds no arrays")
        names = list(keys or archive.files)
        repeated = sorted({k for k in names if names.count(k) > 1})
        if repeated:
            raise UserError(f"--keys names {repeated[0]!r} more than once; each view once")
        missing = [k for k in names if k not in archive.files]
        if missing:
            raise UserError(f"{path} has no array {missing[0]!r}; it has {archive.files}")
        views = []
        for key in names:
            try:
                array = archive[key]
            except _READ_ERRORS as error:
                raise _read_error(path, error, key) from None
            if not isinstance(array, np.ndarray):
                raise UserError(f"member {key!r} of {path} is not a NumPy array")
            views.append(array)
    return names, views


def _load_npy(path: Path) -> np.ndarray:
    _check_magic(path, (_NPY_MAGIC,), ".npy file (no NumPy header)")
    try:
        return np.load(path, allow_pickle=False)
    except _READ_ERRORS as error:
        raise _read_error(path, error) from None


# -- the checks that mdmest.estimate does not make ------------------------------------------------
def _check_arguments(args: argparse.Namespace) -> None:
    if args.divergence is not None and args.measure != "f":
        raise UserError(f"--divergence applies to --measure f only, got --measure {args.measure}")
    if args.lipschitz is not None and args.measure != "wasserstein":
        raise UserError(
            f"--lipschitz applies to --measure wasserstein only, got --measure {args.measure}"
        )
    check_output_file(args.out)


def _estimate(names: list[str], views: list[np.ndarray], args: argparse.Namespace):
    if len(views) < 2:
        raise UserError(f"need at least 2 views, got {len(views)} ({names})")
    options = {
        "negatives": args.negatives,
        "names": names,
        "decomposition": args.decomposition,
        "thorough": args.thorough,
        "refit": not args.no_refit,
        "weight_decay": args.weight_decay,
        "transform": None if args.transform == "none" else args.transform,
    }
    if args.divergence:
        options["divergence"] = args.divergence
    if args.lipschitz:
        options["lipschitz"] = args.lipschitz
    try:
        return mdmest.estimate(
            views,
            args.measure,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            test_fraction=args.test_fraction,
            seed=args.seed,
            progress=show_progress(args),
            device=args.device,
            **options,
        )
    except mdmest.EstimateInputError as error:
        # Raised by the input checks, before any training; any other error is a bug.
        raise UserError(str(error)) from None


def _candidates(result) -> tuple[str | None, dict]:
    """The candidate reported and every candidate's values, as in ``result.to_dict()``:
    ``{name: {"validation": ..., "validation_stderr": ..., "test": ..., "test_stderr": ...,
    "seconds": ..., "start": ..., "start_covariance": ...}}``."""
    record = result.to_dict()
    return record.get("chosen"), record.get("candidates") or {}


def _describe(result, args: argparse.Namespace, names: list[str], file) -> None:
    unit = UNITS[args.measure]
    spread = f" ± {result.stderr:.4f}" if math.isfinite(result.stderr) else ""
    print(
        f"{args.measure} estimate over views {names}: {result.value:.4f}{spread} {unit}", file=file
    )
    if spread:
        print("(± one standard error on the test rows)", file=file)
    print(
        f"rows: {result.n_train} training, {result.n_validation} validation, {result.n_test} "
        f"test; transform: {result.transform or 'none'}",
        file=file,
    )
    chosen, candidates = _candidates(result)
    for name, value in candidates.items():
        took = ""
        if isinstance(value, dict):
            value = dict(value)
            seconds = value.pop("seconds", None)
            took = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
            start = value.pop("start", 0)
            block = value.pop("start_covariance", "") == "block"
            if start:
                took += f", started from a mixture of {start} Gaussians"
                took += " (the views independent within each)" if block else ""
            shown = ", ".join(
                f"{part} {number:.4f}"
                for part, number in value.items()
                if isinstance(number, (int, float))
            )
        else:
            shown = f"{value:.4f}"
        mark = "  (reported)" if name == chosen else ""
        print(f"  candidate {name}: {shown} {unit}{took}{mark}", file=file)
    if chosen is not None:
        print(f"chosen on the validation rows: {chosen}; its test value is reported", file=file)


def run(args: argparse.Namespace) -> int:
    """Estimate; under ``torchrun --nproc-per-node N`` the rows of every training step and of
    every evaluation are split over the ranks (the measure draws its product rows across them),
    every rank computes the same value, and rank 0 prints it and writes ``--out``."""
    _check_arguments(args)
    names, views = load_views(args.files, args.keys)
    with torchrun_session(args.device) as (device, main):
        if not main:
            args.progress = False
            warnings.simplefilter("ignore", mdmest.EstimateWarning)
        result = _estimate(names, views, argparse.Namespace(**{**vars(args), "device": device}))
        if main:
            _report(result, args, names, views)
    return 0


def _report(result, args: argparse.Namespace, names: list[str], views: list[np.ndarray]) -> None:
    as_json = args.json or args.out == "-"
    _describe(result, args, names, sys.stderr if as_json else sys.stdout)
    if not (args.out or args.json):
        return
    record = {
        **result.to_dict(),
        "measure": args.measure,
        "unit": UNITS[args.measure],
        "views": names,
        "dims": [1 if v.ndim == 1 else int(v.shape[1]) for v in views],
        "negatives": result.measure.negatives,
        "decomposition": getattr(result.measure, "decomposition", None),
        "options": {k: v for k, v in vars(args).items() if k not in ("files", "out", "json")},
    }
    if args.out and args.out != "-":
        emit_json(record, args.out)
    if as_json:
        emit_json(record, None)
