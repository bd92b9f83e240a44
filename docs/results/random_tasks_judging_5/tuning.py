"""Both defaults on the tuning seeds: the mixture start with block-diagonal mixtures too
(``mixture_block=1``) and with full covariances only (``mixture_block=0``).

For each tuning seed with 8+ features and truth of at least 0.3 nats, the rows are prepared as
``estimate`` prepares them and the start of ``mixture_block=1`` fitted; where it is a block
mixture, both defaults run whole on the same rows (elsewhere they are one computation: the same
full mixture, or none). One JSON line per seed to the file named first.

    OMP_NUM_THREADS=1 python docs/results/random_tasks_judging_5/tuning.py tuning.jsonl 0 1 2
"""

from __future__ import annotations

import json
import sys
import time

import torch

from mdmest.estimation import EstimateConfig, _checked, _result
from mdmest.estimation.candidates import DEFAULT
from mdmest.estimation.protocol import prepare
from mdmest.estimation.recipes import RECIPE_LR
from mdmest.estimation.training import _flush_denormal
from mdmest.tasks import random_task

DATA_SEED = 1000  # as benchmarks/random_tasks.py
OPTIONS = dict(
    decomposition=None, steps=2000, batch_size=256, lr=RECIPE_LR, lr_schedule="cosine",
    weight_decay=0.0, negatives=None, test_fraction=0.2, eval_negatives=None, seed=0,
    progress=False,
)  # fmt: skip  # estimate(views, "dv", progress=False, seed=0)


def one_default(arrays, transform, dtype, device, config: EstimateConfig) -> dict:
    with _flush_denormal(), torch.random.fork_rng():
        data = prepare(arrays, "dv", {}, dict(OPTIONS), config, transform, dtype, device)
        start = time.perf_counter()
        base = data.mixture_base
        fitted = None if base is None else f"{base.components} {base.covariance}"
        if config.mixture_block and (base is None or base.covariance == "full"):
            return {"start": fitted, "same": True}
        done = {}
        for candidate in DEFAULT:
            if candidate.name not in done and candidate.applies(data, done):
                outcome = candidate.run(data, done)
                if outcome is not None:
                    done[candidate.name] = outcome
        result = _result(data, done)
        return {
            "start": fitted, "same": False, "value": result.value, "chosen": result.chosen,
            "seconds": time.perf_counter() - start,
            "candidates": {k: [o.validation[0], o.read_test()[0]] for k, o in done.items()},
        }  # fmt: skip


def run(seed: int) -> dict | None:
    task = random_task(seed)
    if sum(task.dims) < 8 or task.total_correlation < 0.3:
        return None
    views = task.sample(10000, seed=DATA_SEED + seed)
    arrays, transform, dtype, device = _checked(views, "dv", {}, "auto", None, dict(OPTIONS))
    record = {
        "seed": seed, "structure": task.structure, "base": task.base_structure,
        "dims": task.dims, "truth": task.total_correlation,
    }  # fmt: skip
    record["new"] = one_default(arrays, transform, dtype, device, EstimateConfig())
    if not record["new"]["same"]:
        earlier = EstimateConfig(mixture_block=0)
        record["old"] = one_default(arrays, transform, dtype, device, earlier)
        for arm in ("new", "old"):
            record[arm]["rel_error"] = record[arm]["value"] / task.total_correlation - 1
    return record


def main(out: str, seeds: list[int]) -> None:
    torch.set_num_threads(1)
    with open(out, "a") as f:
        for seed in seeds:
            record = run(seed)
            if record is not None:
                print(json.dumps(record), file=f, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
