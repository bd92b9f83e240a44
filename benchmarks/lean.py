"""The lean of ``mdmest.estimate``'s reported value: independent views (several widths, K = 2 to
4), where the truth is 0, and five scalar Gaussian views, where it is known in closed form.

Each (case, seed) is one record in a JSON-lines file (resumable); ``--summarize`` prints the mean
error and its standard error per case.

    python benchmarks/lean.py --rows 5000 --seeds 10 --out docs/results/lean.jsonl
    python benchmarks/lean.py --summarize docs/results/lean.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import mdmest
from mdmest.tasks import gaussian_task_with_tc

#: (name, K, width, true TC): independent views at 0, and five scalar Gaussians at 1 nat.
CASES = [
    ("independent K=2 d=1", 2, 1, 0.0),
    ("independent K=2 d=8", 2, 8, 0.0),
    ("independent K=2 d=32", 2, 32, 0.0),
    ("independent K=3 d=4", 3, 4, 0.0),
    ("independent K=4 d=2", 4, 2, 0.0),
    ("independent K=4 d=10", 4, 10, 0.0),
    ("five scalar Gaussians", 5, 1, 1.0),
]


def run_case(name: str, k: int, width: int, truth: float, rows: int, seed: int) -> dict:
    task = gaussian_task_with_tc(truth, [width] * k)
    views = task.sample(rows, seed=1000 + seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mdmest.EstimateWarning)
        result = mdmest.estimate(views, "dv", seed=seed, progress=False)
    return {
        "case": name,
        "seed": seed,
        "rows": rows,
        "truth": task.total_correlation,
        "value": result.value,
        "stderr": result.stderr,
        "chosen": getattr(result, "chosen", None),
        "version": mdmest.__version__,
        "seconds": time.perf_counter() - started,
    }


def summarize(path: Path) -> str:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [
        "| case | seeds | truth | mean value | mean error | ± s.e. | rel. error |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, *_ in CASES:
        rows = [r for r in records if r["case"] == name]
        if not rows:
            continue
        errors = np.array([r["value"] - r["truth"] for r in rows])
        truth = rows[0]["truth"]
        se = errors.std(ddof=1) / math.sqrt(len(errors)) if len(errors) > 1 else math.nan
        rel = f"{100 * errors.mean() / truth:+.1f}%" if truth > 0 else ""
        lines.append(
            f"| {name} | {len(rows)} | {truth:.3f} | {np.mean([r['value'] for r in rows]):+.4f} "
            f"| {errors.mean():+.4f} | {se:.4f} | {rel} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/results/lean.jsonl"))
    parser.add_argument("--summarize", type=Path)
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    torch.set_num_threads(1)
    done = set()
    if args.out.exists():
        done = {(r["case"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seeds):
        for name, k, width, truth in CASES:
            if (name, seed) in done:
                continue
            record = run_case(name, k, width, truth, args.rows, seed)
            with args.out.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(
                f"{name} seed {seed}: {record['value']:+.4f} ({record['seconds']:.1f} s)",
                flush=True,
            )
    print(summarize(args.out))


if __name__ == "__main__":
    main()
