"""``mdmest estimate`` under ``torchrun --nproc-per-node 2`` (gloo): the rows of every step are split
over the ranks, the value is one process's (to float rounding), printed and written once."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mdmest.cli import main

ROOT = Path(__file__).parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
ARGS = ["--steps", "40", "--batch-size", "64", "--no-progress", "--seed", "1"]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to python")
@pytest.mark.filterwarnings("ignore::mdmest.EstimateWarning")  # 100 held-out rows
def test_estimate_under_torchrun_gives_one_value_written_once(tmp_path, capsys):
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(500, 1))
    views = tmp_path / "views.npz"
    np.savez(
        views, a=shared + 0.5 * rng.normal(size=(500, 2)), b=shared + rng.normal(size=(500, 1))
    )
    out = tmp_path / "two.json"
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node=2", "-m", "mdmest.cli",
               "estimate", str(views), *ARGS, "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("dv estimate over views") == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".json"] == ["two.json"]
    two = json.loads(out.read_text())
    assert math.isfinite(two["value"])

    assert main(["estimate", str(views), *ARGS, "--out", str(tmp_path / "one.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())
    assert two["value"] == pytest.approx(one["value"], abs=1e-4)
    assert two["stderr"] == pytest.approx(one["stderr"], abs=1e-4)
