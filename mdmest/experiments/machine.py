"""Which machine a result came from: every benchmark records it beside its numbers."""

from __future__ import annotations

import os
import platform
import sys

import torch

__all__ = ["cpu_count", "machine_info"]


def cpu_count() -> int | None:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info() -> dict:
    """Platform, processor, CPUs, torch threads and version, and the GPU if one is used.

    Examples
    --------
    >>> info = machine_info()
    >>> sorted(info) == sorted(
    ...     ["platform", "processor", "cpus", "threads", "python", "torch", "mdmest", "gpu"]
    ... )
    True
    """
    from mdmest import __version__

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": cpu_count(),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "mdmest": __version__,
        "gpu": gpu,
    }
