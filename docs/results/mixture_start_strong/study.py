"""Critic alone on strong, 8+-feature tuning tasks: from nothing, the gated start, and the start
with a learnable scale on the base (s·base + net, s from 1)."""
import json, sys, time
import torch
from torch import nn
torch.set_num_threads(1)
import mdmest
from mdmest.critics import OffsetCritic
from mdmest.estimation import recipes
from mdmest.estimation.config import EstimateConfig
from mdmest.tasks import random_task

class Scaled(OffsetCritic):
    def __init__(self, base, net):
        super().__init__(base, net)
        self.scale = nn.Parameter(torch.ones(()))
    def forward(self, x):
        with torch.no_grad():
            base = self.base(x)
        return self.scale * base + self.net(x)

out = open("/work/exp/scale/study.jsonl", "a")
picked = []
for seed in range(0, 200):
    t = random_task(seed)
    if t.total_correlation >= 3.0 and sum(t.dims) >= 8:
        picked.append(seed)
    if len(picked) >= 10: break
print("picked", picked, flush=True)
opts = dict(progress=False, seed=0, candidates=["critic"])
for seed in picked:
    t = random_task(seed); views = t.sample(10000, seed=1000 + seed)
    rec = {"seed": seed, "structure": t.structure, "dims": list(t.dims), "truth": t.total_correlation}
    r = mdmest.estimate(views, "dv", **opts)
    base = getattr(r.measure.critic, "base", None)
    rec["gate"] = base is not None
    rec["gated"] = float(r.value); rec["gated_train"] = r.train_bound
    if base is None:
        out.write(json.dumps(rec) + "\n"); out.flush(); continue
    r0 = mdmest.estimate(views, "dv", config=EstimateConfig(mixture_max_components=0), **opts)
    rec["nothing"] = float(r0.value); rec["nothing_train"] = r0.train_bound
    recipes.OffsetCritic = Scaled
    try:
        r1 = mdmest.estimate(views, "dv", **opts)
    finally:
        recipes.OffsetCritic = OffsetCritic
    rec["scaled"] = float(r1.value); rec["scaled_train"] = r1.train_bound; rec["scale"] = float(r1.measure.critic.scale)
    out.write(json.dumps(rec) + "\n"); out.flush()
    print(rec, flush=True)
print("finished", flush=True)
