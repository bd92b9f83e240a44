"""Training speed of MAG-BERT (the MiniLM default backbone), without and with each penalty.

Each variant (no penalty, DV, f, Wasserstein) trains its own copy of the same initial model on
batches of real CMU-MOSI segments (the 229 segments of ``dev_misa_format.pkl``), with the
trainer's own step (``Trainer.train_step``): task loss (MSE) + weight × ``measure(z_text, z_audio,
z_video)``, the critic updated from its gradient of the measure in the same backward pass, AdamW
with MAG's parameter groups and the linear warm-up. The variants'
steps are interleaved within each repeat, so that load from other processes hits them alike. The
fastest repeat of each variant is reported (as ``timeit`` does: load from other processes only ever
adds time), with the ratio penalty / no penalty (target ≤ 1.10), in wall-clock time and in the
process's CPU time (all threads); the JSON keeps every repeat.

Usage::

    python benchmarks/mag_speed.py --out results/mag_speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mdmest.experiments import machine_info
from mdmest.fusion.data import collate, load_dataset
from mdmest.fusion.models.mag import DEFAULT_TRAINING, MAGBert
from mdmest.fusion.training import PENALTIES as TRAINING_PENALTIES
from mdmest.fusion.training import TrainConfig, Trainer

PENALTIES = tuple(p for p in TRAINING_PENALTIES if p != "none")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mosi"


def make_trainer(model: MAGBert, dataset, penalty: str, weight: float, lr: float) -> Trainer:
    """A trainer on a copy of ``model``; its ``train_step`` is the step that is timed."""
    config = TrainConfig(
        epochs=1,
        lr=lr,
        weight_decay=0.01,
        task_loss="mse",
        penalty=penalty,
        penalty_weight=weight,
        progress=False,
    )
    return Trainer(copy.deepcopy(model).train(), dataset, config)


def make_batches(path: Path, batch_size: int, seed: int) -> list[dict]:
    """The segments of ``path`` in a fixed random order, cut into full batches."""
    split = next(iter(load_dataset(path).values()))
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed)).tolist()
    return [
        collate([split[i] for i in order[start : start + batch_size]])
        for start in range(0, len(order) - batch_size + 1, batch_size)
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    batches = make_batches(args.data, args.batch_size, args.seed)
    dataset = load_dataset(args.data).split(seed=args.seed)
    model = MAGBert.from_pretrained(dropout=DEFAULT_TRAINING["mosi"]["dropout"])
    names = ["none", *PENALTIES]
    variants = {name: make_trainer(model, dataset, name, args.weight, args.lr) for name in names}
    for variant in variants.values():  # warm-up: first-call allocations and lazy init
        variant.train_step(batches[0])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}
    cursor = 0
    for _ in range(args.repeats):
        chosen = [batches[(cursor + i) % len(batches)] for i in range(args.steps)]
        cursor += args.steps
        for name, variant in variants.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for batch in chosen:
                variant.train_step(batch)
            seconds[name].append(time.perf_counter() - start)
            cpu_seconds[name].append(time.process_time() - cpu_start)
    segments = args.steps * args.batch_size
    speed = {name: segments / min(times) for name, times in seconds.items()}
    cpu = {name: min(times) for name, times in cpu_seconds.items()}
    return {
        "benchmark": "mag_speed",
        "model": "mag_bert (MiniLM-L6-H384 backbone)",
        "command": " ".join(["python benchmarks/mag_speed.py", *args.argv]),
        "machine": machine_info(),
        "batch_size": args.batch_size,
        "steps_per_repeat": args.steps,
        "repeats": args.repeats,
        "penalty_weight": args.weight,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "segments_per_second": speed,
        "time_ratio_vs_no_penalty": {name: speed["none"] / speed[name] for name in PENALTIES},
        "cpu_time_ratio_vs_no_penalty": {name: cpu[name] / cpu["none"] for name in PENALTIES},
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{'penalty':<12} {'segments/s':>10} {'time ratio':>10} {'CPU ratio':>10}")
    for name, speed in result["segments_per_second"].items():
        ratio = result["time_ratio_vs_no_penalty"].get(name, 1.0)
        cpu_ratio = result["cpu_time_ratio_vs_no_penalty"].get(name, 1.0)
        print(f"{name:<12} {speed:>10.2f} {ratio:>10.3f} {cpu_ratio:>10.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "dev_misa_format.pkl")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weight", type=float, default=0.1, help="penalty weight")
    parser.add_argument("--lr", type=float, default=DEFAULT_TRAINING["mosi"]["lr"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    result = run(args)
    print_table(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
