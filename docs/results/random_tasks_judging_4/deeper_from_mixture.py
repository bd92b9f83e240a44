"""The earlier rule's ``deeper`` on the tasks where it differs: trained from the fitted mixture.

``benchmarks/random_tasks.py`` records the defaults, whose ``deeper`` candidate starts from
nothing. Where the first critic started from a fitted mixture (its ``start`` above 0) and
``deeper`` ran, the earlier default trained ``deeper`` from that mixture instead. This script
trains that one on the same prepared rows (the same split, transform, mixture and seed as the
call that made the record: ``prepare`` is deterministic) and appends its validation and test
values to ``deeper_from_mixture.jsonl``; ``compare.py`` then reads both rules off the records
(the choice is the highest validation value; no other candidate's condition reads ``deeper``).

    OMP_NUM_THREADS=1 python docs/results/random_tasks_judging_4/deeper_from_mixture.py \\
        docs/results/random_tasks_judging_4
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from mdmest.estimation import EstimateConfig
from mdmest.estimation.inputs import _as_arrays
from mdmest.estimation.protocol import prepare, train_critic
from mdmest.estimation.recipes import RECIPE_LR
from mdmest.estimation.training import _flush_denormal
from mdmest.tasks import random_task

DATA_SEED = 1000  # as benchmarks/random_tasks.py
OPTIONS = dict(
    decomposition=None, steps=2000, batch_size=256, lr=RECIPE_LR, lr_schedule="cosine",
    weight_decay=0.0, negatives=None, test_fraction=0.2, eval_negatives=None, seed=0,
    progress=False,
)  # fmt: skip  # estimate(views, "dv", progress=False, seed=0)


def deeper_from_mixture(seed: int) -> dict:
    task = random_task(seed)
    arrays = _as_arrays(task.sample(10000, seed=DATA_SEED + seed), None)
    with _flush_denormal(), torch.random.fork_rng():
        data = prepare(
            arrays, "dv", {}, dict(OPTIONS), EstimateConfig(), "per_view", torch.float32,
            torch.device("cpu"),
        )  # fmt: skip
        if data.mixture_base is None:
            raise RuntimeError(f"seed {seed}: the record says a mixture start, prepare finds none")
        start = time.perf_counter()
        outcome = train_critic(data, "deeper", deep=True, mixture=True)
        test = outcome.read_test()
    return {
        "seed": seed,
        "validation": outcome.validation[0],
        "test": test[0],
        "seconds": time.perf_counter() - start,
        "start": int(data.mixture_base.components),
    }


def main(folder: str) -> None:
    torch.set_num_threads(1)
    runs = Path(folder) / "runs.jsonl"
    out = Path(folder) / "deeper_from_mixture.jsonl"
    done = (
        {json.loads(line)["seed"] for line in out.read_text().splitlines()}
        if out.exists()
        else set()
    )
    for line in runs.read_text().splitlines():
        record = json.loads(line)
        candidates = record.get("candidates") or {}
        if record["estimator"] != "mdmest" or record["seed"] in done or "deeper" not in candidates:
            continue
        if not candidates["critic"].get("start"):
            continue  # the first critic started from nothing: both rules train the same deeper
        result = deeper_from_mixture(record["seed"])
        with out.open("a") as f:
            f.write(json.dumps(result) + "\n")
        print(result, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
