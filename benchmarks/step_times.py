"""Step times over the task suite: the slowest training step against the run's median step.

For every task of :func:`mdmest.tasks.task_suite` (one seed, ``--rows`` rows), one
``mdmest.estimate(views, "dv", seed=0)`` with the library's defaults; its per-step wall seconds
(``EstimateResult.step_seconds``) give, against the run's median step:

- ``slowest``: the slowest single step (the literal target of issue 12: ≤ 1.5×);
- ``p99``: the 99th percentile;
- ``window``: the slowest median of ``--window`` consecutive steps: a slowdown that lasts (as
  subnormal floats did: every step from about step 800 on cost ~100×) shows here, a single step
  held up by the operating system does not;
- ``> 1.5×``: how many steps are slower than 1.5× the median.

**Control, in the same run.** After each estimate, the trained critic runs ``len(steps)`` more
forward-and-backward passes on one fixed batch of the same size: constant work, the same kernels,
no optimiser, no new data. Its slowest / median step is what the machine's timer and scheduler
alone give; a training run cannot be expected to do better than its control.

Usage::

    python benchmarks/step_times.py --threads 1 --out docs/results/step_times
    python benchmarks/step_times.py --only student_t --rows 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mdmest import estimate
from mdmest.experiments import (
    DATA_SEED,
    STEP_RATIO_TARGET,
    machine_info,
    markdown_table,
    step_ratios,
    suite_tasks,
)
from mdmest.io import atomic_write_text


def control(result, views: Sequence[np.ndarray], steps: int, batch_size: int) -> np.ndarray:
    """Wall seconds of ``steps`` forward-and-backward passes of the trained measure on one fixed
    batch of its (transformed) training inputs: constant work."""
    measure = result.measure
    rows = result.transform_views([v[:batch_size] for v in views])
    dtype = next(measure.parameters()).dtype
    batch = [torch.as_tensor(r, dtype=dtype) for r in rows]
    measure.train()
    seconds = np.empty(steps)
    for step in range(steps):
        started = time.perf_counter()
        measure.zero_grad(set_to_none=True)
        measure(*batch).backward()
        seconds[step] = time.perf_counter() - started
    return seconds


def format_markdown(records: list[dict], args) -> str:
    head = ["task", "K", "median ms", "slowest", "at step", "p99", "window", "steps > 1.5×"]
    head += ["negatives", "control slowest", "control p99"]
    table = [
        [
            r["task"],
            r["views"],
            f"{r['train']['median_ms']:.2f}",
            f"{r['train']['slowest']:.2f}×",
            r["train"]["slowest_step"],
            f"{r['train']['p99']:.2f}×",
            f"{r['train']['window']:.2f}×",
            r["train"]["over"],
            r["negatives"],
            f"{r['control']['slowest']:.2f}×",
            f"{r['control']['p99']:.2f}×",
        ]
        for r in records
    ]
    lines = [
        f"Rows: {args.rows:,}; seed 0; the library's defaults; ratios to the run's median step. "
        f"window: the slowest median of {args.window} consecutive steps. control: the same "
        "critic's forward and backward on one fixed batch, as many times, right after.",
        "",
        markdown_table(head, table),
    ]
    worst = max(records, key=lambda r: r["train"]["slowest"])
    worst_window = max(records, key=lambda r: r["train"]["window"])
    worst_control = max(records, key=lambda r: r["control"]["slowest"])
    lines += [
        "",
        f"- slowest step / median: worst {worst['train']['slowest']:.2f}× ({worst['task']}); "
        f"target ≤ {STEP_RATIO_TARGET}×: "
        + ("PASS" if worst["train"]["slowest"] <= STEP_RATIO_TARGET else "FAIL"),
        f"- slowest {args.window}-step window / median: worst "
        f"{worst_window['train']['window']:.2f}× ({worst_window['task']}): "
        + ("PASS" if worst_window["train"]["window"] <= STEP_RATIO_TARGET else "FAIL"),
        f"- control (constant work), slowest / median: worst "
        f"{worst_control['control']['slowest']:.2f}× ({worst_control['task']}); median over "
        f"tasks {np.median([r['control']['slowest'] for r in records]):.2f}× (training: "
        f"{np.median([r['train']['slowest'] for r in records]):.2f}×)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--tasks", choices=("two", "multi", "all"), default="all")
    parser.add_argument("--only", action="append", default=[], help="task name contains this")
    parser.add_argument("--window", type=int, default=25, help="steps per window")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per estimate (default: its own)"
    )
    parser.add_argument("--out", default="results/step_times")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    suite = suite_tasks(args.tasks, args.only)
    if not suite:
        parser.error("no task matches --tasks/--only")
    records = []
    for task in tqdm(suite, desc="step times", unit="task", disable=args.no_progress):
        views = task.sample(args.rows, seed=DATA_SEED)
        budget = {} if args.steps is None else {"steps": args.steps}
        result = estimate(views, "dv", seed=0, progress=False, **budget)
        steps = len(result.step_seconds)
        parts = getattr(result.measure, "terms", [result.measure])  # a decomposition's terms
        records.append(
            {
                "task": task.name,
                "views": len(task.dims),
                "negatives": max(part.negatives for part in parts),
                "train": step_ratios(result.step_seconds, args.window),
                "control": step_ratios(control(result, views, steps, 256), args.window),
            }
        )
    text = format_markdown(records, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "step_times.md", text + "\n")
    summary = {"rows": args.rows, "window": args.window, "tasks": records}
    summary["machine"] = machine_info()
    atomic_write_text(out / "step_times.json", json.dumps(summary, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
