"""Critic settings on the ladder's hard cells (many views, wide views, large TC), side by side.

An exploration, not a target: it is how the recipe's adaptive negatives were found. Each setting
changes one thing of ``estimate(views, "dv")`` as it was before adaptive negatives (GELU critic
256-256, shifted sampler, cosine lr, one negative); same budget as the ladder (4000 steps of batch
256 on 20k rows, 20% held out). One JSON line per finished run, appended at once
(:class:`mdmest.experiments.RunRecords`); a run already in the file is not run again.

Usage (on a GPU machine, 16 processes; on CPU use ``--device cpu`` and fewer workers)::

    python benchmarks/critic_sweep.py --out docs/results/critic_sweep/sweep_runs.jsonl \\
        --workers 16 --seeds 3 --device cuda
    python benchmarks/critic_sweep.py --summarize --out docs/results/critic_sweep/sweep_runs.jsonl
    python benchmarks/critic_sweep.py --ess 3:20    # the product rows' effective sample fraction
                                                    # of one-negative critics, per level
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence

import numpy as np

from mdmest.experiments import RunRecords, group_records, markdown_table, run_pending

#: one(critic widths / lr / negatives / objective) change at a time
SETTINGS = ("dv", "w1024", "w512x2", "deep3", "lr2e3", "neg16", "hybrid")
#: (K, d, true TC) cells where the one-negative recipe missed the ladder's error target
CELLS = (
    (4, 5, 4.0), (4, 5, 8.0), (2, 20, 0.5), (2, 20, 4.0), (2, 20, 8.0), (3, 20, 1.0),
    (3, 20, 2.0), (3, 20, 4.0), (3, 20, 8.0), (4, 20, 2.0), (4, 20, 4.0), (4, 20, 8.0),
)  # fmt: skip
WIDTHS = {"w1024": (1024, 256), "w512x2": (512, 512), "deep3": (256, 256, 256)}
#: The fields that tell runs apart.
KEY = ("setting", "k", "d", "tc", "seed")


def run(job: dict, steps: int = 4000, device: str = "cpu") -> dict:
    """One training run of ``job`` (its setting, K, d, TC and seed); returns its results."""
    setting, k, d, tc, seed = (job[name] for name in KEY)
    import torch

    from mdmest import estimate
    from mdmest import functional as Fn
    from mdmest.critics import MLPCritic
    from mdmest.measures import TotalCorrelation
    from mdmest.tasks import gaussian_task_with_tc

    torch.set_num_threads(1)
    views = gaussian_task_with_tc(tc, [d] * k).sample(20000, seed=1000 + seed)
    kw = dict(steps=steps, batch_size=256, lr=1e-3, seed=seed, progress=False, device=device)
    kw["negatives"] = 1
    width = k * d
    start = time.time()
    torch.manual_seed(seed)
    if setting == "dv":
        value = estimate(views, "dv", **kw).value
    elif setting in WIDTHS:
        critic = MLPCritic(width, hidden=WIDTHS[setting], activation="gelu")
        value = estimate(views, "dv", critic=critic, **kw).value
    elif setting == "lr2e3":
        value = estimate(views, "dv", **{**kw, "lr": 2e-3}).value
    elif setting == "neg16":
        value = estimate(views, "dv", **{**kw, "negatives": 16}).value
    elif setting == "hybrid":  # DV loss (MINE's corrected gradient) plus the JS classifier loss

        class Hybrid(TotalCorrelation):
            def objective(self, t_joint, t_product, joint, product):
                loss, bound = super().objective(t_joint, t_product, joint, product)
                return loss - Fn.f_bound(t_joint, t_product, "js"), bound

        measure = Hybrid([d] * k, critic=MLPCritic(width, activation="gelu"), sampler="shifted")
        value = estimate(views, measure, **{**kw, "negatives": None}).value
    else:
        raise KeyError(setting)
    return {"est": value, "sec": time.time() - start, "device": device}


def effective_fractions(k: int, d: int, levels: Sequence[float] = (0.5, 1, 2, 4, 8)) -> str:
    """Mean and least effective sample fraction of e^T over 20 batches of 256 product rows, for
    the one-negative recipe's critic trained at each level (seed 0): what ``negatives="auto"``
    watches during training."""
    import torch

    from mdmest import estimate
    from mdmest.functional import effective_sample_fraction
    from mdmest.tasks import gaussian_task_with_tc

    torch.set_num_threads(1)
    lines = ["| K | d | true TC | estimate | mean fraction | least fraction |", "|---" * 6 + "|"]
    for tc in levels:
        views = gaussian_task_with_tc(tc, [d] * k).sample(20000, seed=1000)
        result = estimate(views, "dv", steps=4000, negatives=1, progress=False)
        measure = result.measure.eval()
        measure.generator = generator = torch.Generator().manual_seed(5)
        rows = [torch.as_tensor(v) for v in views]
        fractions = []
        with torch.no_grad():
            for _ in range(20):
                idx = torch.randint(0, len(rows[0]), (256,), generator=generator)
                _, t_product, _, _ = measure._joint_and_product([v[idx] for v in rows], 1)
                fractions.append(float(effective_sample_fraction(t_product)))
        lines.append(
            f"| {k} | {d} | {tc:g} | {result.value:.3f} | {np.mean(fractions):.3f} | "
            f"{np.min(fractions):.3f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def summarize(runs: Sequence[dict], settings: Sequence[str] = SETTINGS) -> str:
    """Mean relative error (and seeds) per cell and setting, as a Markdown table."""
    by = group_records(runs, lambda r: (r["k"], r["d"], r["tc"], r["setting"]))
    lines = []
    for k, d, tc in sorted(CELLS, key=lambda c: (c[1], c[0], c[2])):
        cells = []
        for s in settings:
            v = [r["est"] for r in by.get((k, d, tc, s), [])]
            cells.append(f"{(np.mean(v) - tc) / tc:+.1%} ({len(v)})" if v else "–")
        lines.append([k, d, f"{tc:g}", *cells])
    return markdown_table(["K", "d", "true TC", *settings], lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sweep_runs.jsonl", help="JSON-lines file, appended to")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--summarize", action="store_true", help="only print the table")
    parser.add_argument("--ess", metavar="K:d", help="only the effective sample fractions")
    args = parser.parse_args(argv)
    if args.ess:
        k, d = (int(v) for v in args.ess.split(":"))
        print(effective_fractions(k, d))
        return 0
    settings = [s for s in args.settings.split(",") if s]
    records = RunRecords(args.out, KEY)
    if not args.summarize:
        # seeds outermost, so that a stopped run covers every cell with some seeds
        jobs = [dict(zip(KEY, (s, k, d, tc, seed)))
                for seed in range(args.seeds) for (k, d, tc) in CELLS for s in settings]  # fmt: skip
        work = functools.partial(run, steps=args.steps, device=args.device)
        run_pending(records, jobs, work, workers=args.workers, desc="critic sweep")
    print(summarize(records.read(), settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
