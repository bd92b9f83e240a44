"""Scaling: time per training step and peak memory as the batch B and the number of views K grow.

For each (B, K), a :class:`mdmest.TotalCorrelation` with the default critic and sampler on K views of
``--dim`` features takes one optimiser step; the script reports the median wall time of a step and
of the sampler alone (index draw + gather of the product rows), and the peak memory that one step
allocates beyond its inputs. Memory comes from ``torch.profiler`` (``profile_memory=True``): the
running sum of each operator's own allocations minus frees, in time order, whose maximum is the
step's peak; it works on CPU, where ``torch.cuda.max_memory_allocated`` does not apply.

The log-log slopes of time and memory against B·K (least squares) say how the cost grows: a slope of
1 is linear.

Usage::

    python benchmarks/scaling.py --out results/scaling
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from tqdm.auto import tqdm

from mdmest import TotalCorrelation
from mdmest.experiments import machine_info, pyplot, save_figure
from mdmest.io import atomic_write_text
from mdmest.sampling import product_indices


def _views(batch: int, num_views: int, dim: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=generator) for _ in range(num_views)]


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_bytes(fn) -> int:
    """Peak of the running sum of CPU allocations minus frees recorded while ``fn`` runs.

    Each profiler event carries the bytes its operator allocated minus freed itself
    (``self_cpu_memory_usage``; frees outside any operator come as "[memory]" events); summed in
    time order they trace the live memory of the step, at the resolution of one operator.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.self_cpu_memory_usage
    )
    running = np.cumsum([usage for _, usage in events]) if events else np.zeros(1)
    return int(max(running.max(), 0))


def measure_point(batch: int, num_views: int, dim: int, repeats: int) -> dict:
    """Step time, sampler time and peak step memory for one (B, K)."""
    torch.manual_seed(0)
    measure = TotalCorrelation([dim] * num_views)
    optimizer = torch.optim.Adam(measure.parameters(), lr=1e-3)
    views = _views(batch, num_views, dim)

    def step() -> None:
        loss = measure(*views)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sample() -> None:
        index = product_indices(batch, num_views)
        torch.cat([v.index_select(0, i) for v, i in zip(views, index)], dim=1)

    return {
        "batch": batch,
        "views": num_views,
        "rows_x_views": batch * num_views,
        "step_ms": 1e3 * _median_seconds(step, repeats),
        "sampler_ms": 1e3 * _median_seconds(sample, 5 * repeats),
        "peak_mib": _peak_bytes(step) / 2**20,
    }


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (1 = linear growth)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def plot(rows: Sequence[dict], slopes: dict, path: Path) -> None:
    """Time and memory against B·K, one line per sweep (needs matplotlib, the ``bench`` extra)."""
    fig, axes = pyplot().subplots(1, 3, figsize=(14, 4))
    for sweep, marker in (("batch", "o"), ("views", "s")):
        part = [r for r in rows if r["sweep"] == sweep]
        x = [r["rows_x_views"] for r in part]
        label = "B grows (K=2)" if sweep == "batch" else "K grows (B fixed)"
        for ax, key in zip(axes, ("step_ms", "sampler_ms", "peak_mib")):
            slope = slopes[sweep][key]
            ax.loglog(x, [r[key] for r in part], marker=marker, label=f"{label}, slope {slope:.2f}")
    titles = ("training step (ms)", "default sampler (ms)", "peak step memory (MiB)")
    for ax, title in zip(axes, titles):
        ax.set(xlabel="B·K (rows × views)", title=title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,256,1024,4096,8192")
    parser.add_argument("--views", default="2,3,4,6,8")
    parser.add_argument("--views-batch", type=int, default=1024, help="B while K grows")
    parser.add_argument("--dim", type=int, default=5, help="features per view")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default="results/scaling")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    views = [int(k) for k in args.views.split(",")]
    plan = [("batch", b, 2) for b in batches] + [("views", args.views_batch, k) for k in views]
    rows = []
    for sweep, b, k in tqdm(plan, desc="scaling", unit="point"):
        rows.append({"sweep": sweep, **measure_point(b, k, args.dim, args.repeats)})
    slopes = {
        sweep: {
            key: loglog_slope(
                [r["rows_x_views"] for r in rows if r["sweep"] == sweep],
                [r[key] for r in rows if r["sweep"] == sweep],
            )
            for key in ("step_ms", "sampler_ms", "peak_mib")
        }
        for sweep in ("batch", "views")
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/scaling.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "dim": args.dim,
        "slopes": slopes,
        "rows": rows,
    }
    atomic_write_text(out / "scaling.json", json.dumps(meta, indent=2) + "\n")
    if not args.no_plot:
        plot(rows, slopes, out / "scaling.png")
    print(f"{'sweep':>6} {'B':>5} {'K':>2} {'step ms':>8} {'sampler ms':>10} {'peak MiB':>9}")
    for r in rows:
        print(
            f"{r['sweep']:>6} {r['batch']:5d} {r['views']:2d} {r['step_ms']:8.2f} "
            f"{r['sampler_ms']:10.3f} {r['peak_mib']:9.2f}"
        )
    for sweep, s in slopes.items():
        print(
            f"log-log slope vs B·K ({sweep} sweep): "
            + ", ".join(f"{k} {v:.2f}" for k, v in s.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
