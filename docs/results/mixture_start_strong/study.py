"""The trained critic alone on strong tuning tasks with 8+ features: from nothing, from the gated
mixture start, and from the start with a learnable scale on the base (s·base + net, s from 1).

Run from the repository root (one torch thread), appending to runs.jsonl here::

    OMP_NUM_THREADS=1 python docs/results/mixture_start_strong/study.py
"""

import json
from pathlib import Path

import torch
from torch import nn

import mdmest
from mdmest.critics import OffsetCritic
from mdmest.estimation import EstimateConfig, recipes
from mdmest.tasks import random_task

OUT = Path(__file__).with_name("runs.jsonl")
OPTIONS = dict(progress=False, seed=0, candidates=["critic"])


class ScaledOffsetCritic(OffsetCritic):
    """``s · base(x) + net(x)`` with ``s`` trained, from 1."""

    def __init__(self, base, net):
        super().__init__(base, net)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        with torch.no_grad():
            base = self.base(x)
        return self.scale * base + self.net(x)


def strong_seeds(count=10):
    """The first ``count`` tuning seeds with truth >= 3 nats and 8+ features."""
    seeds = []
    for seed in range(200):
        task = random_task(seed)
        if task.total_correlation >= 3.0 and sum(task.dims) >= 8:
            seeds.append(seed)
        if len(seeds) == count:
            break
    return seeds


def study(seed):
    task = random_task(seed)
    views = task.sample(10000, seed=1000 + seed)
    record = {
        "seed": seed,
        "structure": task.structure,
        "dims": list(task.dims),
        "truth": task.total_correlation,
    }
    gated = mdmest.estimate(views, "dv", **OPTIONS)
    record["gate"] = getattr(gated.measure.critic, "base", None) is not None
    record["gated"], record["gated_train"] = float(gated.value), gated.train_bound
    if not record["gate"]:
        return record
    scratch = EstimateConfig(mixture_max_components=0)
    nothing = mdmest.estimate(views, "dv", config=scratch, **OPTIONS)
    record["nothing"], record["nothing_train"] = float(nothing.value), nothing.train_bound
    recipes.OffsetCritic = ScaledOffsetCritic
    try:
        scaled = mdmest.estimate(views, "dv", **OPTIONS)
    finally:
        recipes.OffsetCritic = OffsetCritic
    record["scaled"], record["scaled_train"] = float(scaled.value), scaled.train_bound
    record["scale"] = float(scaled.measure.critic.scale.detach())
    return record


def main():
    torch.set_num_threads(1)
    with OUT.open("a") as f:
        for seed in strong_seeds():
            f.write(json.dumps(study(seed)) + "\n")
            f.flush()


if __name__ == "__main__":
    main()
