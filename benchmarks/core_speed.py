"""Speed of one TotalCorrelation training step against the same step written inline (the floor).

Setting of the core issue: batch 256, 3 views of 64 features, critic with two hidden layers of 256,
Adam. Both variants run interleaved in one process (median of many steps), so the ratio is measured
under the same conditions. Also times ``mdmest.estimate`` end to end per step (data handling
included) against an inline loop that does the same minibatching, and a step of ``estimate``'s
recipe at 16 negatives with the product side's gradient from every row against from
``PRODUCT_GRAD_ROWS`` rows drawn by weight (what ``estimate`` trains with).

    python benchmarks/core_speed.py --steps 300 --out results/core_speed.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

import mdmest
from mdmest.critics import MLPCritic
from mdmest.estimation import EVAL_PRODUCT_ROWS, EstimateConfig
from mdmest.experiments import floor_critic, floor_step, machine_info
from mdmest.io import atomic_write_text
from mdmest.transforms import GaussianCopula


def time_steps(step, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def training_step(measure, views: list[torch.Tensor]):
    """One Adam step of ``measure`` on ``views``, as a function of no arguments."""
    opt = torch.optim.Adam(measure.parameters(), 1e-3)

    def step() -> None:
        loss = measure(*views)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def round_robin(variants: dict, steps: int) -> dict[str, list[float]]:
    """Seconds of ``steps`` calls of each variant after 20 of warm-up, one of each in turn, so
    drifts in machine load hit all of them alike."""
    for _ in range(20):
        for step in variants.values():
            step()
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(steps):
        for label, step in variants.items():
            times[label] += time_steps(step, 1)
    return times


def bench_step(batch: int, dims: list[int], steps: int) -> dict:
    """Median time of one training step: the floor and two library variants, round-robin."""
    torch.manual_seed(0)
    views = [torch.randn(batch, d) for d in dims]
    floor = floor_critic(sum(dims))
    floor_opt = torch.optim.Adam(floor.parameters(), 1e-3)
    variants = {"floor": lambda: floor_step(floor, floor_opt, views)}
    for label, kwargs in {"dv": {}, "dv_no_ema": {"ema_decay": None}}.items():
        measure = mdmest.TotalCorrelation(dims, critic=MLPCritic(sum(dims)), **kwargs)
        variants[label] = training_step(measure, views)
    times = round_robin(variants, steps)
    floor_median = statistics.median(times.pop("floor"))
    return {
        label: {
            "library_ms": statistics.median(t) * 1e3,
            "floor_ms": floor_median * 1e3,
            "ratio": statistics.median(t) / floor_median,
        }
        for label, t in times.items()
    }


def bench_negatives(batch: int, dims: list[int], steps: int, negatives: int = 16) -> dict:
    """Median step of estimate's recipe (GELU critic, shifted product rows) at ``negatives``:
    the product side's gradient from every row, and from ``PRODUCT_GRAD_ROWS`` drawn by weight."""
    grad_rows = EstimateConfig().product_grad_rows

    torch.manual_seed(0)
    views = [torch.randn(batch, d) for d in dims]
    variants = {}
    for label, rows in {"all_rows": None, "drawn_rows": grad_rows}.items():
        critic = MLPCritic(sum(dims), activation="gelu")
        measure = mdmest.TotalCorrelation(
            dims, critic=critic, sampler="shifted", negatives=negatives
        )
        measure.product_grad_rows = rows
        variants[label] = training_step(measure, views)
    times = round_robin(variants, steps)
    medians = {label: statistics.median(t) * 1e3 for label, t in times.items()}
    return {
        "dims": dims,
        "negatives": negatives,
        "grad_rows": grad_rows,
        **{f"{label}_ms": ms for label, ms in medians.items()},
        "ratio": medians["drawn_rows"] / medians["all_rows"],
    }


def bench_estimate(n: int, dims: list[int], steps: int, batch: int) -> dict:
    """Per-step cost of ``mdmest.estimate`` end to end vs an inline loop with the same batching.

    Each is timed at ``steps`` and at twice as many (best of 3): the difference over ``steps``
    is the cost of a step, and what is left at ``steps`` the one-off cost of a call (the split,
    the checks, the held-out value with its standard error; the inline loop has almost none).
    """
    torch.manual_seed(0)
    data = [torch.randn(n, d) for d in dims]

    def inline(steps: int) -> None:
        critic = floor_critic(sum(dims))
        opt = torch.optim.Adam(critic.parameters(), 1e-3)
        n_train = int(n * 0.8)
        order = torch.randperm(n)
        train = [t[order[:n_train]] for t in data]
        for step in range(steps):
            if step % (n_train // batch) == 0:
                epoch = torch.randperm(n_train)
            idx = epoch[(step % (n_train // batch)) * batch :][:batch]
            floor_step(critic, opt, [t[idx] for t in train])

    def library(steps: int) -> None:
        # The same work as the inline loop: its ReLU critic, per-view shuffles, one negative,
        # constant lr, no transform and a one-draw held-out value (estimate's defaults add a
        # GELU critic, adaptive negatives, a per-feature transform and 2^18 held-out product
        # rows; the last two are one-off costs, timed separately below).
        torch.manual_seed(0)
        mdmest.estimate(
            data,
            "dv",
            steps=steps,
            batch_size=batch,
            progress=False,
            critic=MLPCritic(sum(dims)),
            sampler="shuffle",
            negatives=1,
            lr_schedule=None,
            transform=None,
            eval_negatives=1,
            candidates=["critic"],  # one run, as the loop does
        )

    best: dict[tuple[str, int], float] = {}
    for _ in range(3):
        for label, run in (("library", library), ("inline", inline)):
            for count in (steps, 2 * steps):
                seconds = min(time_steps(lambda run=run, count=count: run(count), 1))
                best[label, count] = min(best.get((label, count), math.inf), seconds)
    per_step = {
        label: (best[label, 2 * steps] - best[label, steps]) / steps
        for label in ("library", "inline")
    }
    one_off = {label: best[label, steps] - steps * per_step[label] for label in per_step}
    # The default held-out value: at least 2^18 product rows on the 20% held-out part.
    measure = mdmest.TotalCorrelation(dims, critic=MLPCritic(sum(dims), activation="gelu"))
    held_out = [t[: int(n * 0.2)] for t in data]
    negatives = math.ceil(EVAL_PRODUCT_ROWS / held_out[0].shape[0])
    evaluation = min(time_steps(lambda: measure.estimate(*held_out, negatives=negatives), 3))
    # The default transform ("whitened_copula"): fitted on the training rows, applied to all.
    arrays = [t.numpy() for t in data]

    def transform_all() -> None:
        for view in arrays:
            GaussianCopula(whiten=True).fit(view[: int(n * 0.8)]).transform(view)

    transform = min(time_steps(transform_all, 3))
    return {
        "library_ms_per_step": per_step["library"] * 1e3,
        "floor_ms_per_step": per_step["inline"] * 1e3,
        "ratio": per_step["library"] / per_step["inline"],
        "library_one_off_ms": one_off["library"] * 1e3,
        "floor_one_off_ms": one_off["inline"] * 1e3,
        "held_out_value_ms": evaluation * 1e3,
        "held_out_rows": held_out[0].shape[0],
        "held_out_negatives": negatives,
        "transform_ms": transform * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=600, help="timed steps per variant")
    parser.add_argument("--estimate-steps", type=int, default=500)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dims = [64, 64, 64]
    step = bench_step(args.batch, dims, args.steps)
    est = bench_estimate(20000, dims, args.estimate_steps, args.batch)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, dims {dims}"
    )
    print(f"{'variant':<22}{'library ms':>12}{'floor ms':>10}{'ratio':>8}")
    for label, r in step.items():
        print(
            f"{'step ' + label:<22}{r['library_ms']:>12.3f}{r['floor_ms']:>10.3f}{r['ratio']:>8.3f}"
        )
    print(
        f"{'estimate() per step':<22}{est['library_ms_per_step']:>12.3f}"
        f"{est['floor_ms_per_step']:>10.3f}{est['ratio']:>8.3f}"
    )
    print(
        f"once per estimate(): {est['library_one_off_ms']:.0f} ms in this setting (the inline "
        f"loop: {est['floor_one_off_ms']:.0f} ms); by default also the held-out value, "
        f"{est['held_out_value_ms']:.0f} ms ({est['held_out_negatives']} draws of "
        f"{est['held_out_rows']} rows, GELU critic), and the transform, "
        f"{est['transform_ms']:.0f} ms"
    )
    many = [bench_negatives(args.batch, d, args.steps // 3) for d in ([3, 3, 3, 3], [64, 64, 64])]
    for r in many:
        print(
            f"estimate's step at {r['negatives']} negatives, dims {r['dims']}: product gradient "
            f"from all rows {r['all_rows_ms']:.2f} ms, from {r['grad_rows']} drawn "
            f"{r['drawn_rows_ms']:.2f} ms, ratio {r['ratio']:.2f}"
        )
    if args.out:
        record = {"step": step, "estimate": est, "negatives": many, "machine": machine_info()}
        atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
