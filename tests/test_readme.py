"""The README's own examples run, in the order written, at small sizes.

Every ```python block and every command line of the ```bash blocks of README.md is run in one
temporary folder, top to bottom (so ``views.npz`` written by a Python block feeds the ``mdmest
estimate`` line below it, and ``train`` leaves the checkpoint that ``evaluate`` reads). Each must
exit 0. Sizes are made small by appending flags to the commands (``SMALL``) and by a few textual
replacements in the Python blocks (``PY_SMALL``); the lines themselves are taken from the README,
so a renamed option or a wrong path there fails here.

Not run: ``pip install`` (installs into the environment, and the CPU index is off this network),
``make`` (it builds its own ``.venv``) and ``torchrun`` (two training processes: too slow for a
unit test; tests/test_distributed*.py cover the launcher).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Flags appended to each command (by its subcommand) so that it runs in seconds.
SMALL = {
    "demo": ["--samples", "1000", "--dims", "2", "2", "--steps", "20", "--no-progress"],
    "gaussian": [
        "--grid", "0.5", "--seeds", "1", "--steps", "20", "--n-samples", "500",
        "--n-reference", "100", "--measures", "dv", "--no-progress",
    ],
    "estimate": ["--steps", "20", "--no-progress"],
    "train": [
        "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "8",
        "--data-option", "n_train=32", "--data-option", "n_valid=16", "--data-option", "n_test=16",
        "--model-option", "hidden_dim=8", "--no-progress",
    ],
    "evaluate": [],
    "reproduce": [
        "--seeds", "5", "--epochs", "1", "--max-steps-per-epoch", "1", "--penalties", "none,dv",
        "--weights", "0.1", "--no-progress",
    ],
}  # fmt: skip
# Python blocks: exact text -> smaller text (each must occur, so the README and this stay in step).
PY_SMALL = {
    "range(200)": "range(5)",
    ".sample(5000, seed=0)": ".sample(600, seed=0)",
    '"dv", progress=False)': '"dv", steps=20, eval_negatives=16, progress=False)',
}
SKIPPED = ("pip ", "make ", "torchrun ", "#")


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of the README as (language, body), in order."""
    return [(m[1], m[2]) for m in re.finditer(r"```(\w*)\n(.*?)```", text, flags=re.S)]


def commands(body: str) -> list[str]:
    """The command lines of a bash block, comments stripped, skipped lines left out."""
    lines = []
    for line in body.splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(SKIPPED):
            lines.append(line)
    return lines


def steps() -> list[tuple[str, str]]:
    """("python", source) and ("bash", command) in README order."""
    out = []
    for lang, body in blocks(README.read_text()):
        if lang == "python":
            out.append(("python", body))
        elif lang == "bash":
            out.extend(("bash", c) for c in commands(body))
    return out


def test_the_readme_has_what_this_test_runs():
    found = steps()
    kinds = [kind for kind, _ in found]
    assert kinds.count("python") >= 2, "the README lost its Python examples"
    names = [shlex.split(c)[1] for kind, c in found if kind == "bash"]
    assert names == ["demo", "gaussian", "estimate", "train", "evaluate", "reproduce"], names
    text = README.read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text  # the CPU wheel, first
    assert text.index("whl/cpu") < text.index("make demo")
    assert len(text.splitlines()) <= 120


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _run(argv: list[str], cwd: Path, label: str) -> None:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    print(f"{time.perf_counter() - start:6.1f} s  {label}")  # shown with pytest -s
    assert proc.returncode == 0, f"{label} exited {proc.returncode}:\n{proc.stderr[-3000:]}"


@pytest.mark.slow
def test_every_readme_example_runs_in_order(tmp_path):
    for i, (kind, item) in enumerate(steps()):
        if kind == "python":
            source = item
            for old, new in PY_SMALL.items():
                assert old in source or not _meant_for(old, source), old
                source = source.replace(old, new)
            script = tmp_path / f"block{i}.py"
            script.write_text(source)
            _run([sys.executable, str(script)], tmp_path, f"README Python block {i}")
        else:
            argv = shlex.split(item)
            assert argv[0] == "mdmest", item
            extra = SMALL[argv[1]]
            _run([sys.executable, "-m", "mdmest.cli", *argv[1:], *extra], tmp_path, item)
    # What the commands promise to leave behind.
    assert (tmp_path / "views.npz").is_file()
    assert (tmp_path / "runs" / "ef_lstm-wasserstein-seed0" / "best.pt").is_file()
    assert (tmp_path / "results" / "gaussian").is_dir()


def _meant_for(old: str, source: str) -> bool:
    """Whether a replacement belongs to this block (by the call it shrinks)."""
    key = {"range(200)": "measure.loss", ".sample(5000": "mdmest.estimate"}
    for prefix, marker in key.items():
        if old.startswith(prefix):
            return marker in source
    return "mdmest.estimate" in source
