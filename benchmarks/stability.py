"""Long-run numerical stability of every measure: no NaN/Inf in loss, critic weights or gradients.

Each measure (DV total correlation, each f-divergence of ``mdmest.functional.DIVERGENCES``,
Wasserstein with gradient penalty and with spectral norm) trains its default critic with Adam for
``--steps`` steps on four Gaussian views with total correlation 8 nats
(``mdmest.tasks.gaussian_task_with_tc(8.0, [d] * 4)``), once per dtype:

* ``float32``: plain float32;
* ``bfloat16``: the forward pass under ``torch.autocast(device, dtype=torch.bfloat16)`` (CPU or CUDA);
* ``float16``: ``torch.autocast("cuda", dtype=torch.float16)`` with a ``torch.amp.GradScaler``
  (CUDA only; skipped, and recorded as skipped, on a machine without CUDA).

Every step checks the loss, every critic parameter and every gradient for NaN/Inf (with a
GradScaler: the unscaled gradients; a step the scaler skips for an Inf gradient is counted, not
failed, since skipping it is what the scaler is for). The measures' own finiteness screen
(``check_views``, a ``ValueError`` that names the view) is recorded with its step and message if it
fires. A run stops at its first non-finite value. The JSON and a markdown table go to ``--out``,
with the machine (platform, CPU count, torch version).

    OMP_NUM_THREADS=1 python benchmarks/stability.py --steps 10000 --out docs/results/stability
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import mdmest
from mdmest import functional as Fn
from mdmest.experiments import machine_info, markdown_table
from mdmest.io import atomic_write_text
from mdmest.tasks import gaussian_task_with_tc

# name -> (constructor, kwargs)
MEASURES: dict[str, tuple[type, dict]] = {
    "dv": (mdmest.TotalCorrelation, {}),
    **{f"f:{name}": (mdmest.FTotalCorrelation, {"divergence": name}) for name in Fn.DIVERGENCES},
    "wasserstein:gp": (mdmest.WassersteinDependency, {"lipschitz": "gradient_penalty"}),
    "wasserstein:sn": (mdmest.WassersteinDependency, {"lipschitz": "spectral_norm"}),
}
DTYPES = ("float32", "bfloat16", "float16")


def _first_nonfinite(named: dict[str, torch.Tensor | None]) -> str | None:
    """The name of the first tensor with a NaN or Inf, or None."""
    for name, tensor in named.items():
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def run_one(
    measure_name: str,
    dtype: str,
    *,
    steps: int,
    batch: int,
    dim: int,
    tc: float,
    lr: float,
    seed: int,
    device: torch.device,
    progress: bool,
) -> dict:
    """Train one measure for ``steps`` steps; return what happened."""
    record: dict = {"measure": measure_name, "dtype": dtype, "steps_requested": steps}
    if dtype == "float16" and device.type != "cuda":
        record.update(status="skipped", reason="float16 autocast with GradScaler needs CUDA")
        return record
    torch.manual_seed(seed)
    task = gaussian_task_with_tc(tc, [dim] * 4)
    pool_rows = 65_536
    pool = [torch.from_numpy(v).to(device) for v in task.sample(pool_rows, seed=seed)]
    cls, kwargs = MEASURES[measure_name]
    measure = cls(task.dims, **kwargs).to(device)
    optimizer = torch.optim.Adam(measure.parameters(), lr=lr)
    if dtype == "float32":
        autocast = nullcontext
        scaler = None
    else:
        amp_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float16

        def autocast():
            return torch.autocast(device.type, dtype=amp_dtype)

        scaler = torch.amp.GradScaler(device.type) if dtype == "float16" else None
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    params = dict(measure.named_parameters())
    bounds: list[float] = []
    skipped_by_scaler = 0
    record.update(first_nonfinite=None, screen=None)
    start = time.perf_counter()
    bar = tqdm(
        range(1, steps + 1),
        desc=f"{measure_name}/{dtype}",
        disable=not progress,
        mininterval=10.0,
        leave=False,
    )
    step = 0
    for step in bar:
        rows = torch.randint(pool_rows, (batch,), generator=generator).to(device)
        views = [v.index_select(0, rows) for v in pool]
        try:
            with autocast():
                loss = measure(*views)
        except ValueError as err:  # the finiteness screen (or another input check) fired
            record["screen"] = {"step": step, "message": str(err)}
            break
        optimizer.zero_grad(set_to_none=True)
        if not bool(torch.isfinite(loss.detach())):
            record["first_nonfinite"] = {"step": step, "where": "loss"}
            break
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        grads = {f"grad {name}": p.grad for name, p in params.items()}
        bad = _first_nonfinite(grads)
        if bad is not None and scaler is not None:
            skipped_by_scaler += 1  # the scaler skips this step and lowers its scale
        elif bad is not None:
            record["first_nonfinite"] = {"step": step, "where": bad}
            break
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        bad = _first_nonfinite({f"parameter {name}": p.detach() for name, p in params.items()})
        if bad is not None:
            record["first_nonfinite"] = {"step": step, "where": bad}
            break
        bounds.append(float(measure.last_bound))
    bar.close()
    seconds = time.perf_counter() - start
    finished = record["first_nonfinite"] is None and record["screen"] is None
    tail = bounds[-min(len(bounds), 500) :]
    with torch.no_grad():
        held_out = [torch.from_numpy(v).to(device) for v in task.sample(4096, seed=seed + 7)]
        final = float(measure.estimate(*held_out, negatives=16, generator=0)) if finished else None
    record.update(
        status="ok" if finished else "failed",
        steps_run=len(bounds) if finished else step,
        seconds=round(seconds, 2),
        ms_per_step=round(1000 * seconds / max(step, 1), 3),
        last_bound_mean_last500=round(float(np.mean(tail)), 4) if tail else None,
        last_bound_min=round(float(np.min(bounds)), 4) if bounds else None,
        last_bound_max=round(float(np.max(bounds)), 4) if bounds else None,
        estimate_4096_rows_16_negatives=None if final is None else round(final, 4),
        scaler_skipped_steps=skipped_by_scaler if scaler is not None else None,
    )
    return record


TABLE_HEAD = [
    "measure",
    "dtype",
    "status",
    "steps run",
    "first NaN/Inf",
    "screen fired",
    "bound, mean of last 500",
    "bound min / max",
    "estimate (4096 rows, 16 neg.)",
    "ms/step",
]


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def markdown(result: dict) -> str:
    setup = result["setup"]
    lines = [
        f"Stability: {setup['steps']} Adam steps (lr {setup['lr']}), batch {setup['batch']}, "
        f"4 Gaussian views of {setup['dim']} features, TC = {setup['tc']} nats, default critics, "
        f"{setup['threads']} thread(s) on {setup['device']}.",
        "",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, "
        f"torch {result['machine']['torch']}, mdmest {result['machine']['mdmest']}.",
        "",
    ]
    table = []
    for r in result["runs"]:
        if r["status"] == "skipped":
            table.append([r["measure"], r["dtype"], f"skipped ({r['reason']})", *["–"] * 7])
            continue
        bad = r["first_nonfinite"]
        screen = r["screen"]
        table.append(
            [
                r["measure"],
                r["dtype"],
                r["status"],
                r["steps_run"],
                "none" if bad is None else f"step {bad['step']}: {bad['where']}",
                "no" if screen is None else f"step {screen['step']}: {screen['message']}",
                _fmt(r["last_bound_mean_last500"]),
                f"{_fmt(r['last_bound_min'])} / {_fmt(r['last_bound_max'])}",
                _fmt(r["estimate_4096_rows_16_negatives"]),
                _fmt(r["ms_per_step"], 2),
            ]
        )
    lines.append(markdown_table(TABLE_HEAD, table, right=TABLE_HEAD[3:4] + TABLE_HEAD[6:]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument(
        "--measures", nargs="+", default=list(MEASURES), choices=list(MEASURES), metavar="MEASURE"
    )
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--out", type=Path, default=Path("docs/results/stability"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dim", type=int, default=4, help="features per view (4 views)")
    parser.add_argument("--tc", type=float, default=8.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    setup = {
        key: getattr(args, key) for key in ("steps", "batch", "dim", "tc", "lr", "seed", "threads")
    }
    setup.update(measures=args.measures, dtypes=args.dtypes, device=str(device))
    result = {"setup": setup, "machine": machine_info(), "command": " ".join(sys.argv), "runs": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.measures:
        for dtype in args.dtypes:
            record = run_one(
                name,
                dtype,
                steps=args.steps,
                batch=args.batch,
                dim=args.dim,
                tc=args.tc,
                lr=args.lr,
                seed=args.seed,
                device=device,
                progress=not args.no_progress,
            )
            result["runs"].append(record)
            print(json.dumps(record), flush=True)
            # Written after every run, so a long run that is stopped keeps what it finished.
            atomic_write_text(args.out / "stability.json", json.dumps(result, indent=2) + "\n")
            atomic_write_text(args.out / "stability.md", markdown(result))
    return result


if __name__ == "__main__":
    main()
