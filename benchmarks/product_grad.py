"""The product side's gradient from every row against from ``product_grad_rows`` rows drawn by
weight: test values and seconds of ``estimate`` on tasks whose negatives reach 16.

Each task and seed runs twice with the same seed, ``candidates=["critic"]`` (the critic alone):
once with ``EstimateConfig(product_grad_rows=None)`` (every row), once with the default.
Run it alone on the machine: the seconds are only comparable then.

    python benchmarks/product_grad.py --seeds 0,1 --out docs/results/product_grad
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mdmest import estimate
from mdmest.estimation import EstimateConfig
from mdmest.experiments import machine_info
from mdmest.io import atomic_write_text
from mdmest.tasks import (
    AdditiveNoiseTask,
    StudentTTask,
    TransformedTask,
    correlated_pair,
    gaussian_task_with_tc,
)

#: name: (task, rows, steps); each one's negatives reach 16 with the defaults.
TASKS = {
    "half_cube, 4 x 3, 2 nats": (
        lambda: TransformedTask(gaussian_task_with_tc(2.0, (3, 3, 3, 3)), "half_cube"),
        10_000,
        2000,
    ),
    "spiral, 2 x 2, 4 nats": (
        lambda: TransformedTask(gaussian_task_with_tc(4.0, (2, 2)), "spiral"),
        10_000,
        2000,
    ),
    "Student-t nu=3, 2 x 2, rho=0.97": (
        lambda: StudentTTask((2, 2), dof=3, cov=correlated_pair(0.97, 2).cov),
        10_000,
        2000,
    ),
    "additive noise eps=0.05": (lambda: AdditiveNoiseTask(1, 0.05), 10_000, 2000),
    "asinh, 3 x 2, 6 nats": (
        lambda: TransformedTask(gaussian_task_with_tc(6.0, (2, 2, 2)), "asinh"),
        10_000,
        2000,
    ),
    "Gaussian 4 x 5, 4 nats": (lambda: gaussian_task_with_tc(4.0, (5, 5, 5, 5)), 20_000, 4000),
    "Gaussian 2 x 5, 8 nats": (lambda: gaussian_task_with_tc(8.0, (5, 5)), 20_000, 4000),
    "Gaussian 3 x 20, 4 nats": (lambda: gaussian_task_with_tc(4.0, (20, 20, 20)), 20_000, 4000),
}


def run(name: str, seed: int, grad_rows: int | None, tasks: dict = TASKS) -> dict:
    """One ``estimate`` of task ``name`` (of ``tasks``) with ``product_grad_rows=grad_rows``."""
    make, rows, steps = tasks[name]
    task = make()
    views = task.sample(rows, seed=seed)
    config = EstimateConfig(product_grad_rows=grad_rows)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = estimate(
            views, "dv", steps=steps, seed=seed, candidates=["critic"], config=config,
            progress=False,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    return {
        "task": name,
        "seed": seed,
        "grad_rows": grad_rows,
        "truth": task.total_correlation,
        "value": result.value,
        "stderr": result.stderr,
        "seconds": seconds,
        "median_step_ms": 1e3 * float(np.median(result.step_seconds)),
        "negatives": result.measure.negatives,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--tasks", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--out", type=Path, required=True, help="folder for runs.json, table.md")
    args = parser.parse_args()
    names = args.tasks.split(",") if args.tasks else list(TASKS)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [
        (n, s, g) for n in names for s in seeds for g in (None, EstimateConfig().product_grad_rows)
    ]
    runs = [run(*job) for job in tqdm(jobs, desc="runs")]
    lines = [
        "| task | seeds | truth | every row | drawn rows | mean difference (nats) | median step ms |",
        "|---|---|---|---|---|---|---|",
    ]
    differences = []
    for name in names:
        full = [r for r in runs if r["task"] == name and r["grad_rows"] is None]
        drawn = [r for r in runs if r["task"] == name and r["grad_rows"] is not None]
        pairs = [b["value"] - a["value"] for a, b in zip(full, drawn)]
        differences += pairs
        truth = full[0]["truth"]

        def rel(rs, truth=truth):
            return f"{100 * (np.mean([r['value'] for r in rs]) / truth - 1):+.1f}%"

        def step(rs):
            return np.mean([r["median_step_ms"] for r in rs])

        lines.append(
            f"| {name} | {len(full)} | {truth:.3f} | {rel(full)} | {rel(drawn)} | "
            f"{np.mean(pairs):+.3f} | {step(full):.2f} → {step(drawn):.2f} |"
        )
    lines.append("")
    lines.append(
        f"All {len(differences)} pairs: mean difference {np.mean(differences):+.3f} nats "
        f"(from {min(differences):+.3f} to {max(differences):+.3f})."
    )
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"runs": runs, "machine": machine_info()}
    atomic_write_text(args.out / "runs.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(args.out / "table.md", table)


if __name__ == "__main__":
    main()
