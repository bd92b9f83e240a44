"""The earlier default on the tasks where it differs: mixtures with full covariances only.

``benchmarks/random_tasks.py`` records the defaults, whose mixture start may be a mixture with
covariances block-diagonal by view (``EstimateConfig.mixture_block=1``). Where the first
critic's start was such a mixture (its ``start_covariance`` is "block"), the earlier default
(``mixture_block=0``) started from the best full-covariance mixture, or from nothing, and every
candidate after it may differ: this script runs that default whole on the same rows and
appends its record to ``full_covariance.jsonl``. Elsewhere the two defaults fit and choose the
same full mixture (or none) and are the same computation, bit for bit.

    OMP_NUM_THREADS=1 python docs/results/random_tasks_judging_5/full_covariance.py \\
        docs/results/random_tasks_judging_5
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import mdmest
from mdmest.estimation import EstimateConfig
from mdmest.tasks import random_task

DATA_SEED = 1000  # as benchmarks/random_tasks.py


def earlier_default(seed: int) -> dict:
    task = random_task(seed)
    views = task.sample(10000, seed=DATA_SEED + seed)
    start = time.perf_counter()
    result = mdmest.estimate(
        views, "dv", progress=False, seed=0, config=EstimateConfig(mixture_block=0)
    )
    return {
        "seed": seed,
        "value": float(result.value),
        "rel_error": float(result.value) / task.total_correlation - 1,
        "chosen": result.chosen,
        "seconds": time.perf_counter() - start,
        "candidates": {k: c.to_dict() for k, c in result.candidates.items()},
    }


def main(folder: str) -> None:
    torch.set_num_threads(1)
    runs = Path(folder) / "runs.jsonl"
    out = Path(folder) / "full_covariance.jsonl"
    done = (
        {json.loads(line)["seed"] for line in out.read_text().splitlines() if line.strip()}
        if out.exists()
        else set()
    )
    for line in runs.read_text().splitlines():
        record = json.loads(line)
        candidates = record.get("candidates") or {}
        if record["estimator"] != "mdmest" or record["seed"] in done:
            continue
        if candidates.get("critic", {}).get("start_covariance") != "block":
            continue  # the same full mixture, or none: both defaults are one computation
        result = earlier_default(record["seed"])
        with out.open("a") as f:
            f.write(json.dumps(result) + "\n")
        print({k: v for k, v in result.items() if k != "candidates"}, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
