"""Steps and rows: the held-out value of ``mdmest.estimate`` against the number of rows and steps.

Two tasks with a known truth from :mod:`mdmest.tasks`:

- ``gaussian(tc=2, dims=(5, 5, 5))``: three Gaussian views, 2 nats of total correlation;
- ``spiral``: a two-view Gaussian pair at 1 nat seen through the spiral map (a smooth, invertible,
  non-linear map of each view), so the critic has to learn a curved density ratio.

For every rows × steps pair one run of ``mdmest.estimate(views, "dv", steps=s, progress=False)``
with the trained critic only (``candidates=["critic"]`` where ``estimate`` has that option, else
``refit=False``), so that the curve shows what training buys, not what a bound without training
adds. One seed. Outputs:

- ``--out``/steps_rows.csv: one line per run (task, truth, rows, steps, value, stderr, seconds);
  runs already there are skipped, so an interrupted run continues where it stopped;
- ``--png`` (default docs/img/steps_rows.png): value against rows, one line per number of steps,
  one panel per task, the truth as a dashed line.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/steps_rows.py                 # 2 tasks x 5 rows x 4 steps
    OMP_NUM_THREADS=1 python benchmarks/steps_rows.py --rows 500 1000 --steps 250
    python benchmarks/steps_rows.py --plot-only                        # redraw from the CSV
"""

from __future__ import annotations

import argparse
import csv
import inspect
import os
import time
from collections import Counter
from pathlib import Path

import mdmest
from mdmest.tasks import TransformedTask, gaussian_task_with_tc

FIELDS = ["task", "truth", "rows", "steps", "value", "stderr", "seconds"]


def tasks() -> dict[str, mdmest.tasks.Task]:
    """The two tasks of the plot, by short name."""
    return {
        "gaussian 3 views (5, 5, 5)": gaussian_task_with_tc(2.0, (5, 5, 5)),
        "spiral pair (2, 2)": TransformedTask(gaussian_task_with_tc(1.0, (2, 2)), "spiral"),
    }


def critic_only() -> dict:
    """The option of ``estimate`` that keeps only the trained critic, whichever this version has."""
    params = inspect.signature(mdmest.estimate).parameters
    if "candidates" in params:
        return {"candidates": ["critic"]}
    return {"refit": False}


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def run(rows_list: list[int], steps_list: list[int], out: Path, seed: int) -> list[dict]:
    done = read(out)
    seen = {(r["task"], int(r["rows"]), int(r["steps"])) for r in done}
    options = critic_only()
    # Rows outermost and both tasks at each, so that a run stopped early still has both panels.
    for rows in rows_list:
        for name, task in tasks().items():
            views = task.sample(rows, seed=1000 + seed)
            for steps in steps_list:
                if (name, rows, steps) in seen:
                    continue
                start = time.perf_counter()
                result = mdmest.estimate(
                    views, "dv", steps=steps, seed=seed, progress=False, **options
                )
                seconds = time.perf_counter() - start
                done.append(
                    {
                        "task": name,
                        "truth": f"{task.total_correlation:.4f}",
                        "rows": rows,
                        "steps": steps,
                        "value": f"{result.value:.4f}",
                        "stderr": f"{result.stderr:.4f}",
                        "seconds": f"{seconds:.1f}",
                    }
                )
                write(out, done)
                print(
                    f"{name:28s} rows={rows:6d} steps={steps:5d} value={result.value:7.3f} "
                    f"truth={task.total_correlation:.3f} ({seconds:.1f} s)",
                    flush=True,
                )
    return done


def plot(records: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["task"] for r in records))
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = [r for r in records if r["task"] == name]
        counts = Counter(int(r["steps"]) for r in mine)
        for steps in sorted(s for s, count in counts.items() if count > 1):  # lines, not dots
            line = sorted(
                (int(r["rows"]), float(r["value"]), float(r["stderr"]))
                for r in mine
                if int(r["steps"]) == steps
            )
            xs, ys, es = zip(*line)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=2, label=f"{steps} steps")
        ax.axhline(float(mine[0]["truth"]), color="black", linestyle="--", label="truth")
        ax.set_xscale("log")
        ax.set_xlabel("rows (a fifth of them held out)")
        ax.set_ylabel("held-out value (nats)")
        ax.set_title(name)
        ax.legend(fontsize=8, loc="best", framealpha=0.6)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 1000, 2000, 5000, 10000])
    parser.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/steps_rows/steps_rows.csv"))
    parser.add_argument("--png", type=Path, default=Path("docs/img/steps_rows.png"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the CSV")
    args = parser.parse_args(argv)
    records = read(args.out) if args.plot_only else run(args.rows, args.steps, args.out, args.seed)
    plot(records, args.png)


if __name__ == "__main__":
    main()
