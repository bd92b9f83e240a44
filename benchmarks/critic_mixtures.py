"""Why a trained critic reads low on clustered Gaussian mixtures, and which recipe fixes it.

Each task: a cluster label c ~ Cat(w) shared by K views, view k | c ~ N(mu_{k,c}, s^2 I); its total
correlation by Monte Carlo over the exact density (log p(x) - sum_k log p(x_k), each a
log-sum-exp over the clusters). Each variant changes one thing of ``estimate(views, "dv",
refit=False)`` (the critic alone, no second run, no closed-form candidates); the table has the
relative error of the held-out value and the seconds per run.

Usage (one process, one thread; times are those of a shared machine)::

    python benchmarks/critic_mixtures.py --variants default,lr3e3 --seeds 0,1
    python benchmarks/critic_mixtures.py --summarize --out critic_mixtures_runs.jsonl
    python benchmarks/critic_mixtures.py --variants resln128x4 --tasks r10,g2_10x10 --seeds 1

Variants (joined with +): default, js, lrX, stepsN, bsN, copula, notransform, std, constlr, negN,
wdX, wSIZExDEPTH, heSIZExDEPTH, lnSIZExDEPTH, resSIZExDEPTH, reslnSIZExDEPTH. Tasks: TASKS,
GAUSSIAN, and rSEED for a seed of the random TUNING draw (the judging draw is refused).
Results: docs/results/critic_mixtures.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time

import numpy as np
from scipy.special import logsumexp

#: name -> (view widths, clusters, separation of the cluster means, seed of the means).
#: The separations put the truth between 1 and 2.5 nats.
TASKS = {
    "c2x5": ([5, 5], 8, 1.8, 11),
    "c2x10": ([10, 10], 6, 1.2, 12),
    "c3x3": ([3, 3, 3], 10, 1.5, 13),
    "c4x6": ([6, 4, 8, 3], 5, 0.9, 14),
}


class ClusteredMixture:
    """K views sharing a cluster label; ``tc(rows)`` is a Monte Carlo estimate of the TC."""

    def __init__(self, dims, clusters, separation, seed, scale=1.0):
        rng = np.random.default_rng(seed)
        self.dims, self.scale = list(dims), scale
        self.weights = rng.dirichlet(np.full(clusters, 5.0))
        self.means = [rng.normal(0, separation, (clusters, d)) for d in self.dims]

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        label = rng.choice(len(self.weights), size=n, p=self.weights)
        return [m[label] + self.scale * rng.standard_normal((n, m.shape[1])) for m in self.means]

    def _log_components(self, view, means):
        # log N(x; mu_c, s^2 I) for every cluster c: (n, C)
        d = view.shape[1]
        sq = ((view[:, None, :] - means[None]) ** 2).sum(-1)
        return -0.5 * sq / self.scale**2 - d * np.log(self.scale) - 0.5 * d * np.log(2 * np.pi)

    def log_ratio(self, views):
        logw = np.log(self.weights)
        parts = [self._log_components(v, m) for v, m in zip(views, self.means)]
        joint = logsumexp(logw + sum(parts), axis=1)
        marginals = sum(logsumexp(logw + p, axis=1) for p in parts)
        return joint - marginals

    def tc(self, rows=400_000, seed=12345):
        values = np.concatenate(
            [self.log_ratio(self.sample(rows // 8, seed + i)) for i in range(8)]
        )
        return float(values.mean()), float(values.std() / np.sqrt(len(values)))


#: Guard rails: Gaussian views at a given TC (closed form), name -> (TC, view widths).
GAUSSIAN = {
    "g0.5_10x10": (0.5, [10, 10]),
    "g2_2x2": (2.0, [2, 2]),
    "g2_10x10": (2.0, [10, 10]),
    "g4_5x5x5": (4.0, [5, 5, 5]),
}


class _Gaussian:
    def __init__(self, tc, dims):
        from mdmest.tasks import gaussian_task_with_tc

        self.inner, self.dims, self.value = gaussian_task_with_tc(tc, dims), dims, tc

    def sample(self, n, seed=0):
        return self.inner.sample(n, seed=seed)

    def tc(self):
        return self.value, 0.0


class _Random:
    """A task of the tuning draw of mdmest.tasks.random (never the judging draw)."""

    def __init__(self, seed):
        from mdmest.tasks.random import TUNING_SEEDS, random_task

        if seed not in TUNING_SEEDS:
            raise ValueError(f"tune on TUNING_SEEDS only, got seed {seed}")
        self.inner = random_task(seed)
        self.dims = list(self.inner.dims)

    def sample(self, n, seed=0):
        return self.inner.sample(n, seed=seed)

    def tc(self):
        return self.inner.total_correlation, 0.0


def task(name):
    if name.startswith("r") and name[1:].isdigit():
        return _Random(int(name[1:]))
    if name in GAUSSIAN:
        return _Gaussian(*GAUSSIAN[name])
    dims, clusters, separation, seed = TASKS[name]
    return ClusteredMixture(dims, clusters, separation, seed)


def options(variant: str, dims: list[int]) -> dict:
    """The ``estimate`` options of a variant (a '+'-joined list of changes)."""
    import torch

    from mdmest.critics import MLPCritic

    out: dict = {}
    width = sum(dims)
    for change in variant.split("+"):
        if change == "default":
            continue
        elif change.startswith("lr"):
            out["lr"] = float(change[2:])
        elif change.startswith("steps"):
            out["steps"] = int(change[5:])
        elif change.startswith("bs"):
            out["batch_size"] = int(change[2:])
        elif change == "copula":
            out["transform"] = "copula"
        elif change == "notransform":
            out["transform"] = None
        elif change == "std":  # each feature standardised (in run), then no transform
            out["transform"] = None
        elif change == "js":  # the critic trained by logistic regression, the DV bound read
            out["critic_objective"] = "js"
        elif change == "constlr":
            out["lr_schedule"] = None
        elif change.startswith("he"):  # he256x2: the MLP with He (Kaiming) initialisation
            size, depth = change[2:].split("x")
            critic = MLPCritic(width, hidden=(int(size),) * int(depth), activation="gelu")
            with torch.no_grad():
                linears = [m for m in critic.net if isinstance(m, torch.nn.Linear)]
                for layer in linears[:-1]:
                    torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    layer.bias.zero_()
            out["critic"] = critic
        elif change.startswith("wd"):
            out["weight_decay"] = float(change[2:])
        elif change.startswith("neg"):
            out["negatives"] = int(change[3:])
        elif change.startswith("w"):  # w512x2, w256x3, w1024x1
            size, depth = change[1:].split("x")
            out["critic"] = MLPCritic(width, hidden=(int(size),) * int(depth), activation="gelu")
        elif change.startswith("resln"):  # resln256x3: pre-norm residual blocks
            size, depth = change[5:].split("x")
            out["critic"] = MLPCritic(
                width,
                hidden=(int(size),) * int(depth),
                activation="gelu",
                residual=True,
                layer_norm=True,
            )
        elif change.startswith("res"):  # res256x3: residual blocks, no normalisation
            size, depth = change[3:].split("x")
            out["critic"] = MLPCritic(
                width, hidden=(int(size),) * int(depth), activation="gelu", residual=True
            )
        elif change.startswith("ln"):  # ln256x2: LayerNorm after each hidden linear, no skip
            size, depth = change[2:].split("x")
            out["critic"] = MLPCritic(
                width, hidden=(int(size),) * int(depth), activation="gelu", layer_norm=True
            )
        else:
            raise KeyError(change)
    return out


def run(name: str, variant: str, seed: int, rows: int, data_seed: int | None = None) -> dict:
    import torch

    from mdmest import estimate

    torch.set_num_threads(1)
    t = task(name)
    views = t.sample(rows, seed=100 + seed if data_seed is None else data_seed)
    torch.manual_seed(seed)
    opts = options(variant, t.dims)
    if "std" in variant.split("+"):
        views = [(v - v.mean(0)) / v.std(0) for v in views]
    start = time.perf_counter()
    result = estimate(views, "dv", progress=False, seed=seed, refit=False, **opts)
    return dict(
        task=name,
        variant=variant,
        seed=seed,
        rows=rows,
        value=result.value,
        train=result.train_bound,
        sec=time.perf_counter() - start,
    )


def summarize(records: list[dict], truths: dict) -> str:
    table = collections.defaultdict(list)
    for r in records:
        table[r["variant"], r["task"]].append(r)
    variants = list(dict.fromkeys(r["variant"] for r in records))
    names = list(dict.fromkeys(r["task"] for r in records))
    head = "| variant | " + " | ".join(names) + " | mean rel. err | mean s |"
    lines = [head, "|" + "---|" * (len(names) + 3)]
    for v in variants:
        cells, errs, secs = [], [], []
        for n in names:
            rs = table[v, n]
            if not rs:
                cells.append("")
                continue
            e = [r["value"] / truths[n] - 1 for r in rs]
            errs += e
            secs += [r["sec"] for r in rs]
            cells.append(f"{100 * np.mean(e):+.1f}% ({len(rs)})")
        lines.append(
            f"| {v} | "
            + " | ".join(cells)
            + f" | {100 * np.mean(errs):+.1f}% | {np.mean(secs):.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--out", default="critic_mixtures_runs.jsonl")
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--truths", action="store_true")
    parser.add_argument(
        "--data-seed", type=int, default=None, help="sample every run's rows with this seed "
        "(default: 100 + the run's seed)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = args.tasks.split(",")
    if args.truths:
        for n in TASKS:
            print(n, task(n).tc())
        return
    if not args.summarize:
        truths = {n: task(n).tc()[0] for n in names}
        for variant in args.variants.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for n in names:
                    record = run(n, variant, seed, args.rows, args.data_seed)
                    record["truth"] = truths[n]
                    with open(args.out, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    print(json.dumps(record), flush=True)
    records = [json.loads(line) for line in open(args.out)]
    print(summarize(records, {r["task"]: r["truth"] for r in records}))


if __name__ == "__main__":
    main(sys.argv[1:])
