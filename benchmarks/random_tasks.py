"""Random tasks: the library's defaults and the field's estimators on a draw of
:func:`mdmest.tasks.random_task`.

Every task of the draw (``--seeds``: ``tuning``, ``judging-N`` or a range ``A-B``, both ends
included) is sampled once at ``--rows`` rows (data seed 1000 + the task's seed); on it run

- ``mdmest``: ``mdmest.estimate(views, "dv", progress=False, seed=0)``, the defaults (every task);
- the peers, on the two-view tasks (``--peers-on all``: every task, K > 2 by the chain rule):
  ``ksg`` (k = 3, all rows), ``infonce`` (separable critic, 2000 steps of batch 256, capped at
  log 256 per term), ``mine`` (joint critic, Donsker–Varadhan with MINE's moving-average
  gradient, same budget), all from ``mdmest.experiments.baselines``.

A diffusion- or flow-based peer is not included: ``diffusion-mi`` 0.1.0 would replace torch 2.13 by
2.14.1 (and pull torchaudio, torchvision, CUDA wheels), and ``torch-mist`` 0.2.17 would replace
numpy by 1.26.4 (checked with ``pip install --dry-run``).

Each (task, estimator, rows) result is one JSON line of ``runs.jsonl`` under ``--out`` (appended
with one write and an fsync; lines already there are skipped, so an interrupted run continues
where it stopped; a torn last line is ignored). From the lines of this draw the script writes
``random_tasks.md`` (per task: structure, K, dims, truth ± its Monte Carlo standard error, each
estimator's value, relative error and seconds, and for mdmest the candidate its value came from;
then the summary), ``random_tasks_summary.json``
and ``random_tasks.png`` (relative error against the true TC, coloured by structure, one panel per
estimator).

The summary counts only tasks with a truth of at least 0.3 nats, as the issue's targets do
(judging draw, 10,000 rows): mean |relative error| ≤ 8%, none below −20%, none above +10%, at
most 15 s per task with the defaults; and on the two-view tasks at least as accurate as the best
peer on average.

The judging draws (``--seeds judging-N``, :func:`mdmest.tasks.judging_draw`; ``judging`` is the
first) judge the defaults and are never used for tuning: seeds of any of them run only with
``--judging-run``. Tune on ``--seeds tuning``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/random_tasks.py --seeds 0-59 --threads 1
    python benchmarks/random_tasks.py --seeds tuning --estimators mdmest --out /tmp/try
    python benchmarks/random_tasks.py --seeds tuning --summarize
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mdmest import estimate
from mdmest.experiments import machine_info
from mdmest.experiments.baselines import infonce, ksg, mine
from mdmest.io import atomic_open, atomic_write_text
from mdmest.tasks import JUDGING_SEEDS, RANDOM_STRUCTURES, draw_seeds, random_task

ESTIMATORS = ("mdmest", "ksg", "infonce", "mine")
PEERS = ("ksg", "infonce", "mine")
DATA_SEED = 1000
#: The issue's targets for ``mdmest`` on the judging draw.
TARGET_FROM = 0.3  # only tasks whose truth is at least this many nats count
TARGET_MEAN_REL = 0.08
TARGET_LOW = -0.20
TARGET_HIGH = 0.10
TARGET_SECONDS = 15.0


def parse_seeds(text: str) -> tuple[str, list[int]]:
    """(label, seeds) of ``tuning``, ``judging``, ``judging-N`` or ``A-B`` (both ends included)."""
    if text == "tuning" or text.startswith("judging"):
        try:
            return text, list(draw_seeds(text))
        except ValueError:
            pass
    first, sep, last = text.partition("-")
    try:
        a, b = int(first), int(last if sep else first)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds must be 'tuning', 'judging-N' or A-B (ints, A <= B), got {text!r}"
        ) from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"--seeds A-B needs 0 <= A <= B, got {text!r}")
    return f"{a}-{b}", list(range(a, b + 1))


def touches_judging(seeds: Sequence[int]) -> bool:
    return any(s >= JUDGING_SEEDS[0] for s in seeds)  # every judging draw lies above the tuning


def run_one(name: str, views: Sequence[np.ndarray], args) -> tuple[float, dict]:
    """The estimator's value, and for mdmest what else the record keeps: the candidate its value
    came from, each candidate's validation and test values, and the components and covariance
    of the fitted mixture the chosen critic started from (0 and "": from nothing, or no trained
    critic)."""
    if name == "mdmest":
        result = estimate(views, "dv", progress=False, seed=0)
        candidates = {
            k: {
                "validation": c.validation, "test": c.test, "seconds": c.seconds,
                "start": c.start, "start_covariance": c.start_covariance,
            }
            for k, c in result.candidates.items()
        }  # fmt: skip
        chosen = result.candidates[result.chosen]
        extra = {
            "chosen": result.chosen, "candidates": candidates, "mixture_start": chosen.start,
            "mixture_covariance": chosen.start_covariance,
        }  # fmt: skip
        return float(result.value), extra
    if name == "ksg":
        return ksg(views, k=3, seed=0), {}
    if name == "infonce":
        return infonce(views, seed=0), {}
    if name == "mine":
        return mine(views, seed=0), {}
    raise ValueError(f"unknown estimator {name!r}; valid values are {ESTIMATORS}")


def without(records: Sequence[dict], candidate: str) -> list[dict]:
    """mdmest's records as the defaults without ``candidate`` would have read them: the recorded
    candidate with the highest validation value among the others, its test value (estimator
    ``mdmest-without-<candidate>``; seconds as run, with it). Exact for a candidate whose outcome
    no later candidate's condition reads, such as "deeper"."""
    derived = []
    for r in records:
        if r["estimator"] != "mdmest" or not r.get("candidates"):
            continue
        others = {k: c for k, c in r["candidates"].items() if k != candidate}
        if not others:
            continue
        chosen = max(others, key=lambda k: others[k]["validation"])
        value = others[chosen]["test"]
        derived.append(
            {
                **r,
                "estimator": f"mdmest-without-{candidate}",
                "chosen": chosen,
                "value": value,
                "error": value - r["truth"],
                "rel_error": (value - r["truth"]) / r["truth"],
            }
        )
    return derived


def read_runs(path: Path) -> list[dict]:
    """The records of ``path``; a line that does not parse (a torn last append) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_record(path: Path, record: dict) -> None:
    """One JSON line, written with one ``write`` on an O_APPEND descriptor, then fsync."""
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with open(path, "rb") as f:  # a torn last line: start on a fresh one
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _key(record: dict) -> tuple:
    return (int(record["seed"]), record["estimator"], int(record["rows"]))


def wanted(task, name: str, args) -> bool:
    return name == "mdmest" or args.peers_on == "all" or task.num_views == 2


def run_draw(args, seeds: Sequence[int], path: Path) -> None:
    for seed in seeds:
        # Read again before each task: another process may append to the same file.
        done = {_key(r) for r in read_runs(path)}
        names = [n for n in args.estimators if (seed, n, args.rows) not in done]
        if not names:
            continue
        task = random_task(seed)
        names = [n for n in names if wanted(task, n, args)]
        if not names:
            continue
        views = task.sample(args.rows, seed=DATA_SEED + seed)
        for name in names:
            start = time.perf_counter()
            value, extra = run_one(name, views, args)
            seconds = time.perf_counter() - start
            truth = task.total_correlation
            record = {
                "seed": seed,
                "task": task.name,
                "structure": task.structure,
                "base_structure": task.base_structure,
                "views": task.num_views,
                "dims": list(task.dims),
                "target": task.target,
                "truth": truth,
                "truth_stderr": task.truth_stderr,
                "estimator": name,
                "rows": args.rows,
                "value": value,
                "error": value - truth,
                "rel_error": (value - truth) / truth,
                "seconds": seconds,
            }
            record.update(extra)
            append_record(path, record)
            if not args.no_progress:
                print(
                    f"seed {seed} {task.structure} K={task.num_views} truth {truth:.3f} "
                    f"{name} {value:.3f} ({record['rel_error']:+.1%}) {seconds:.1f} s",
                    flush=True,
                )


def candidate_seconds(records: Sequence[dict]) -> dict[str, dict]:
    """Where mdmest's time goes: for each candidate, the tasks it ran on, its mean seconds there
    and its share of all the seconds the timed candidates took (records that timed them)."""
    runs: dict[str, list[float]] = {}
    for r in records:
        if r["estimator"] != "mdmest":
            continue
        for name, c in (r.get("candidates") or {}).items():
            if c.get("seconds") is not None:
                runs.setdefault(name, []).append(float(c["seconds"]))
    total = sum(sum(v) for v in runs.values())
    return {
        name: {
            "tasks": len(v),
            "mean_seconds": float(np.mean(v)),
            "share": float(sum(v) / total) if total > 0 else 0.0,
        }
        for name, v in sorted(runs.items(), key=lambda item: -sum(item[1]))
    }


def summarize(records: Sequence[dict], seeds: Sequence[int], args) -> dict:
    """Per-task rows and per-estimator summaries of this draw's records at ``args.rows``."""
    seeds_set = set(seeds)
    records = [
        r
        for r in records
        if int(r["seed"]) in seeds_set
        and int(r["rows"]) == args.rows
        and r["estimator"] in args.estimators
    ]
    by_task: dict[int, dict] = {}
    for r in records:
        entry = by_task.setdefault(
            int(r["seed"]),
            {
                k: r[k]
                for k in (
                    "seed", "task", "structure", "base_structure", "views", "dims",
                    "target", "truth", "truth_stderr",
                )
            },
        )  # fmt: skip
        entry[r["estimator"]] = {
            "value": r["value"],
            "rel_error": r["rel_error"],
            "seconds": r["seconds"],
        }
        if r.get("chosen"):
            entry[r["estimator"]]["chosen"] = r["chosen"]
    tasks = [by_task[s] for s in sorted(by_task)]
    summary = {}
    for name in args.estimators:
        mine_ = [t for t in tasks if name in t and t["truth"] >= TARGET_FROM]
        if not mine_:
            continue
        rel = np.array([t[name]["rel_error"] for t in mine_])
        low = min(mine_, key=lambda t: t[name]["rel_error"])
        high = max(mine_, key=lambda t: t[name]["rel_error"])
        per_structure = {}
        for structure in RANDOM_STRUCTURES:
            here = [abs(t[name]["rel_error"]) for t in mine_ if t["structure"] == structure]
            if here:
                per_structure[structure] = {
                    "tasks": len(here),
                    "mean_abs_rel": float(np.mean(here)),
                }
        two = [abs(t[name]["rel_error"]) for t in mine_ if t["views"] == 2]
        seconds = [t[name]["seconds"] for t in tasks if name in t]
        summary[name] = {
            "tasks": len(mine_),
            "mean_abs_rel": float(np.abs(rel).mean()),
            "median_abs_rel": float(np.median(np.abs(rel))),
            "worst_low": float(low[name]["rel_error"]),
            "worst_low_task": low["task"],
            "worst_high": float(high[name]["rel_error"]),
            "worst_high_task": high["task"],
            "below_low": int(np.sum(rel < TARGET_LOW)),
            "above_high": int(np.sum(rel > TARGET_HIGH)),
            "mean_abs_rel_two_view": float(np.mean(two)) if two else None,
            "two_view_tasks": len(two),
            "max_seconds": float(max(seconds)),
            "mean_seconds": float(np.mean(seconds)),
            "per_structure": per_structure,
        }
    # The two-view tasks every estimator ran on (truth >= 0.3): a like-for-like comparison.
    present = [n for n in args.estimators if n in summary]
    common = [
        t
        for t in tasks
        if t["views"] == 2 and t["truth"] >= TARGET_FROM and all(n in t for n in present)
    ]
    head_to_head = {
        n: float(np.mean([abs(t[n]["rel_error"]) for t in common])) if common else None
        for n in present
    }
    return {
        "rows": args.rows,
        "draw": args.draw_label,
        "candidate_seconds": candidate_seconds(records),
        "seeds_in_draw": len(seeds),
        "tasks_run": len(tasks),
        "tasks": tasks,
        "summary": summary,
        "two_view_common": {"tasks": len(common), "mean_abs_rel": head_to_head},
    }


def targets(result: dict) -> list[tuple[str, bool | None, str]]:
    lib = result["summary"].get("mdmest")
    if lib is None:
        return []
    checks = [
        (
            f"mean |relative error| ≤ {TARGET_MEAN_REL:.0%} (truth ≥ {TARGET_FROM})",
            lib["mean_abs_rel"] <= TARGET_MEAN_REL,
            f"{lib['mean_abs_rel']:.1%} over {lib['tasks']} tasks",
        ),
        (
            f"none below {TARGET_LOW:+.0%}",
            lib["below_low"] == 0,
            f"{lib['below_low']} below; worst {lib['worst_low']:+.1%} ({lib['worst_low_task']})",
        ),
        (
            f"none above {TARGET_HIGH:+.0%}",
            lib["above_high"] == 0,
            f"{lib['above_high']} above; worst {lib['worst_high']:+.1%} ({lib['worst_high_task']})",
        ),
        (
            f"at most {TARGET_SECONDS:g} s per task",
            lib["max_seconds"] <= TARGET_SECONDS,
            f"slowest {lib['max_seconds']:.1f} s",
        ),
    ]
    common = result["two_view_common"]
    peers = {
        n: v
        for n, v in common["mean_abs_rel"].items()
        if n in PEERS and v is not None  # not mdmest, nor an ablation of it (--without)
    }
    if peers and common["mean_abs_rel"].get("mdmest") is not None:
        best = min(peers, key=peers.get)
        ours = common["mean_abs_rel"]["mdmest"]
        checks.append(
            (
                "two-view tasks: at least as accurate as the best peer on average",
                ours <= peers[best],
                f"{ours:.1%} vs {best} {peers[best]:.1%} over {common['tasks']} tasks",
            )
        )
    return checks


def format_markdown(result: dict, estimators: Sequence[str]) -> str:
    present = [
        n for n in estimators if n in result["summary"] or any(n in t for t in result["tasks"])
    ]
    lines = [
        f"Draw: {result['draw']} ({result['tasks_run']} of {result['seeds_in_draw']} tasks run); "
        f"rows: {result['rows']:,}; values in nats; rel.: (value − truth) / truth; s: wall "
        "seconds; truth ± its Monte Carlo standard error where it has one.",
        "",
        "| seed | structure | K | dims | truth | "
        + " | ".join(f"{n} | {n} rel. | {n} s" for n in present)
        + " |",
        "|---|---|---|---|---|" + "---|" * (3 * len(present)),
    ]
    for t in result["tasks"]:
        structure = t["structure"] + (f" ({t['base_structure']})" if t["base_structure"] else "")
        truth = f"{t['truth']:.3f}" + (f" ± {t['truth_stderr']:.3f}" if t["truth_stderr"] else "")
        cells = []
        for n in present:
            e = t.get(n)
            chosen = f" ({e['chosen']})" if e and e.get("chosen") else ""
            cells.append(
                f"{e['value']:.3f}{chosen} | {e['rel_error']:+.1%} | {e['seconds']:.1f}"
                if e
                else "– | – | –"
            )
        dims = "×".join(str(d) for d in t["dims"])
        lines.append(
            f"| {t['seed']} | {structure} | {t['views']} | {dims} | {truth} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        f"Summary over tasks with truth ≥ {TARGET_FROM} nats:",
        "",
        "| estimator | tasks | mean abs. rel. | median abs. rel. | worst low | worst high | "
        f"< {TARGET_LOW:+.0%} | > {TARGET_HIGH:+.0%} | two-view mean abs. rel. | slowest s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in present:
        s = result["summary"].get(n)
        if s is None:
            continue
        two = "–" if s["mean_abs_rel_two_view"] is None else f"{s['mean_abs_rel_two_view']:.1%}"
        lines.append(
            f"| {n} | {s['tasks']} | {s['mean_abs_rel']:.1%} | {s['median_abs_rel']:.1%} | "
            f"{s['worst_low']:+.1%} | {s['worst_high']:+.1%} | {s['below_low']} | "
            f"{s['above_high']} | {two} ({s['two_view_tasks']}) | {s['max_seconds']:.1f} |"
        )
    structures = [s for s in RANDOM_STRUCTURES if any(
        s in v["per_structure"] for v in result["summary"].values())]  # fmt: skip
    lines += [
        "",
        "Mean |relative error| per structure (tasks with truth ≥ "
        f"{TARGET_FROM} nats; the number of tasks in brackets):",
        "",
        "| estimator | " + " | ".join(structures) + " |",
        "|---|" + "---|" * len(structures),
    ]
    for n in present:
        s = result["summary"].get(n)
        if s is None:
            continue
        cells = [
            f"{s['per_structure'][k]['mean_abs_rel']:.1%} ({s['per_structure'][k]['tasks']})"
            if k in s["per_structure"]
            else "–"
            for k in structures
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    common = result["two_view_common"]
    if common["tasks"]:
        lines += [
            "",
            f"Two-view tasks every estimator ran on (truth ≥ {TARGET_FROM}, {common['tasks']} "
            "tasks), mean |relative error|: "
            + ", ".join(f"{n} {v:.1%}" for n, v in common["mean_abs_rel"].items() if v is not None),
        ]
    timed = result.get("candidate_seconds") or {}
    if timed:
        lines += [
            "",
            "Where mdmest's time goes (each candidate's run: training and validation value):",
            "",
            "| candidate | tasks it ran on | mean s there | share of the time |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {c['tasks']} | {c['mean_seconds']:.1f} | {c['share']:.0%} |"
            for name, c in timed.items()
        ]
    checks = targets(result)
    if checks:
        lines += ["", "Targets (mdmest; set for the judging draw at 10,000 rows):", ""]
        for name, met, detail in checks:
            mark = "n/a" if met is None else "PASS" if met else "FAIL"
            lines.append(f"- {mark}: {name}: {detail}")
    return "\n".join(lines)


def plot(result: dict, estimators: Sequence[str], path: Path) -> None:
    """Relative error against the true TC, coloured by structure, one panel per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    present = [n for n in estimators if any(n in t for t in result["tasks"])]
    if not present:
        return
    fig, axes = plt.subplots(
        1, len(present), figsize=(4.4 * len(present), 4.0), squeeze=False, sharey=True
    )
    colours = dict(zip(RANDOM_STRUCTURES, plt.get_cmap("tab10").colors))
    for ax, name in zip(axes[0], present):
        ax.axhspan(TARGET_LOW, TARGET_HIGH, color="tab:green", alpha=0.1)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.axvline(TARGET_FROM, color="grey", lw=0.6, ls=":")
        for structure in RANDOM_STRUCTURES:
            pts = [
                (t["truth"], t[name]["rel_error"], t["views"])
                for t in result["tasks"]
                if name in t and t["structure"] == structure
            ]
            if not pts:
                continue
            x, y, k = zip(*pts)
            ax.scatter(
                x,
                np.clip(y, -1.0, 1.0),
                s=[10 + 8 * v for v in k],
                color=colours[structure],
                label=structure,
                alpha=0.8,
                edgecolors="none",
            )
        ax.set_xscale("log")
        # Plain numbers, and no labels on the minor ticks (they collide over a narrow range).
        lo, hi = ax.get_xlim()
        ax.set_xticks([t for t in (0.1, 0.2, 0.5, 1, 2, 5) if lo <= t <= hi])
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_ylim(-1.02, 1.02)
        ax.set_xlabel("true total correlation (nats)")
        ax.set_title(name)
    axes[0][0].set_ylabel("relative error (clipped to ±100%; size: K)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"random tasks, draw {result['draw']}: {result['rows']:,} rows", fontsize=10)
    fig.tight_layout()
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def _split(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("tuning"))
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--estimators",
        type=_split,
        default=list(ESTIMATORS),
        help=f"comma-separated, among {', '.join(ESTIMATORS)}",
    )
    parser.add_argument(
        "--peers-on",
        choices=("two", "all"),
        default="two",
        help="the tasks the peers run on: two-view ones (default) or all (chain rule)",
    )
    parser.add_argument(
        "--judging-run",
        action="store_true",
        help="allow seeds of the judging draw (never for tuning)",
    )
    parser.add_argument(
        "--without",
        default=None,
        metavar="CANDIDATE",
        help="also summarise mdmest as the defaults without this candidate would have read, "
        "from the candidates' recorded values (no rerun)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="default: docs/results/random_tasks_<draw>")
    parser.add_argument("--summarize", action="store_true", help="only rebuild the outputs")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.draw_label, seeds = args.seeds
    unknown = sorted(set(args.estimators) - set(ESTIMATORS))
    if unknown:
        parser.error(f"unknown estimators {unknown}; valid values are {list(ESTIMATORS)}")
    if touches_judging(seeds) and not args.judging_run and not args.summarize:
        parser.error(
            "these seeds include a judging draw (mdmest.tasks.judging_draw), which judges the "
            "defaults and is never used for tuning; pass --judging-run to run it"
        )
    if args.rows < 100:
        parser.error(f"--rows must be at least 100, got {args.rows}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    label = "tuning" if args.draw_label == "tuning" else args.draw_label
    out = Path(
        args.out or f"docs/results/random_tasks_{'judging' if touches_judging(seeds) else 'tuning'}"
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "runs.jsonl"
    if not args.summarize:
        run_draw(args, seeds, path)
    records = read_runs(path)
    if args.without:
        ablation = f"mdmest-without-{args.without}"
        records += without(records, args.without)
        args.estimators = [*args.estimators, ablation]
    result = summarize(records, seeds, args)
    if not result["tasks"]:
        parser.error(f"no records of draw {label} at {args.rows} rows in {path}")
    result["targets"] = [
        {"target": name, "met": met, "detail": detail} for name, met, detail in targets(result)
    ]
    result["machine"] = machine_info()
    text = format_markdown(result, args.estimators)
    atomic_write_text(out / "random_tasks.md", text + "\n")
    atomic_write_text(out / "random_tasks_summary.json", json.dumps(result, indent=2) + "\n")
    if not args.no_plot:
        plot(result, args.estimators, out / "random_tasks.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
