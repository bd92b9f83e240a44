"""Benchmark scripts for the tests: run as a user runs them, or (the few whose functions are tested
and that have no home in the library yet) loaded as a module from their file."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *argv: str) -> subprocess.CompletedProcess:
    """``python benchmarks/NAME.py ARGV...`` with one torch thread; its output captured as text."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), *argv]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def load_script(name: str) -> ModuleType:
    """The script ``benchmarks/NAME.py`` as a module (it must import no sibling script)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
