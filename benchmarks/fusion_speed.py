"""Training speed of the fusion models: mdmest vs MMSA 2.2.1, and the cost of the penalty.

One epoch = ceil(segments / batch_size) optimiser steps on random CMU-MOSI-shaped data (1284
training segments, 50 word-aligned steps), with MMSA's batch size, learning rate and weight decay
for each model. For each model, the epochs of every variant (MMSA's model, ours, ours + each
penalty) are interleaved within each repeat, so that load from other processes hits them alike;
the median over repeats is reported.

MMSA is a benchmark-only dependency, not one of mdmest's extras. Install it without its dependencies
(it pins old versions of many packages)::

    pip download --no-deps MMSA==2.2.1 && pip install --no-deps MMSA-2.2.1-py3-none-any.whl

Its model files are loaded straight from the installed package (``MMSA/models/singleTask``),
which avoids importing ``MMSA`` itself (that pulls transformers, the data loaders and the
trainers). Without MMSA (or with ``--no-mmsa``) only our models are timed.

Usage::

    python benchmarks/fusion_speed.py --out results/fusion_speed
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import mdmest
from mdmest.experiments import machine_info, markdown_table
from mdmest.fusion import MODALITIES
from mdmest.fusion.models import build_model
from mdmest.fusion.training import PENALTIES as TRAINING_PENALTIES
from mdmest.io import atomic_write_text

MODELS = ("ef_lstm", "tfn", "lmf", "mfn")
PENALTIES = tuple(p for p in TRAINING_PENALTIES if p != "none")
# Our model name (also MMSA's config_regression.json key) → MMSA's file and class name.
MMSA_MODELS = {"ef_lstm": "EF_LSTM", "tfn": "TFN", "lmf": "LMF", "mfn": "MFN"}


StepFunction = Callable[[dict], torch.Tensor]


def make_data(
    segments: int, steps: int, dims: tuple[int, int, int], lengths: str, seed: int
) -> dict[str, torch.Tensor]:
    """Random word-aligned data in the batch layout of :mod:`mdmest.fusion`."""
    generator = torch.Generator().manual_seed(seed)
    if lengths == "full":
        length = torch.full((segments,), steps, dtype=torch.int64)
    else:
        length = torch.randint(1, steps + 1, (segments,), generator=generator)
    padding = torch.arange(steps) >= length.unsqueeze(1)
    data: dict[str, torch.Tensor] = {"label": torch.rand(segments, generator=generator) * 6 - 3}
    for modality, dim in zip(MODALITIES, dims, strict=True):
        x = torch.randn(segments, steps, dim, generator=generator)
        x[padding] = 0.0
        data[modality] = x
        data[f"{modality}_lengths"] = length
    return data


def batches(data: dict[str, torch.Tensor], batch_size: int, seed: int) -> list[dict]:
    """One shuffled epoch of batches."""
    order = torch.randperm(len(data["label"]), generator=torch.Generator().manual_seed(seed))
    return [{key: value[index] for key, value in data.items()} for index in order.split(batch_size)]


def load_mmsa_classes() -> dict[str, type[nn.Module]]:
    """Load MMSA's model classes from its installed files without importing the ``MMSA`` package."""
    spec = importlib.util.find_spec("MMSA")
    if spec is None or not spec.submodule_search_locations:
        return {}
    models_dir = Path(list(spec.submodule_search_locations)[0]) / "models"
    # Stand-in parent packages, so that "from ..subNets import SubNet" in TFN.py and LMF.py resolves
    # to FeatureNets.py alone instead of subNets/__init__.py, which imports transformers.
    for package in ("_mmsa_bench", "_mmsa_bench.singleTask"):
        module = types.ModuleType(package)
        module.__path__ = []
        sys.modules[package] = module
    sys.modules["_mmsa_bench.subNets"] = _load_file(
        "_mmsa_bench.subNets", models_dir / "subNets" / "FeatureNets.py"
    )
    classes = {}
    for name, file_name in MMSA_MODELS.items():
        module = _load_file(
            f"_mmsa_bench.singleTask.{file_name}", models_dir / "singleTask" / f"{file_name}.py"
        )
        classes[name] = getattr(module, file_name)
    return classes


def _load_file(module_name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def mmsa_config(model_key: str, dataset: str) -> dict[str, Any]:
    """MMSA's own hyperparameters for a model, read from its installed config_regression.json."""
    spec = importlib.util.find_spec("MMSA")
    assert spec is not None and spec.submodule_search_locations
    path = Path(list(spec.submodule_search_locations)[0]) / "config" / "config_regression.json"
    return json.loads(path.read_text())[model_key]["datasetParams"][dataset]


def mmsa_step(name: str, cls: type[nn.Module], dims: tuple[int, int, int], steps: int):
    """MMSA's model and a function from a batch to its prediction (B,)."""
    args = types.SimpleNamespace(
        **mmsa_config(name, "mosi"),
        feature_dims=list(dims),
        seq_lens=steps,
        train_mode="regression",
        num_classes=1,
    )
    model = cls(args)
    pooled = name in ("tfn", "lmf")

    def predict(batch: dict) -> torch.Tensor:
        audio, video = batch["audio"], batch["video"]
        if pooled:
            # MMSA feeds TFN and LMF audio/video averaged over time (its "need_normalized" loader).
            audio, video = audio.mean(dim=1, keepdim=True), video.mean(dim=1, keepdim=True)
        return model(batch["text"], audio, video)["M"].view(-1)

    return model, predict


def time_epoch(
    parameters: list[nn.Parameter],
    loss_of: StepFunction,
    training: dict[str, float],
    epoch: list[dict],
) -> float:
    """Seconds for one epoch of Adam steps on ``loss_of(batch)``, after two warm-up steps."""
    optimizer = torch.optim.Adam(
        parameters, lr=training["lr"], weight_decay=training["weight_decay"]
    )

    def step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_of(batch).backward()
        optimizer.step()

    for batch in epoch[:2]:
        step(batch)
    start = time.perf_counter()
    for batch in epoch:
        step(batch)
    return time.perf_counter() - start


def variants(
    name: str,
    dims: tuple[int, int, int],
    steps: int,
    penalties: tuple[str, ...],
    penalty_weight: float,
    mmsa_classes: dict[str, type[nn.Module]],
) -> tuple[dict[str, tuple[list[nn.Parameter], StepFunction]], dict[str, float]]:
    """The timed variants of a model (parameters, training loss) and MMSA's training setup."""
    torch.manual_seed(0)
    found: dict[str, tuple[list[nn.Parameter], StepFunction]] = {}
    if name in mmsa_classes:
        model, predict = mmsa_step(name, mmsa_classes[name], dims, steps)
        model.train()
        found["mmsa"] = (
            list(model.parameters()),
            lambda batch: nn.functional.l1_loss(predict(batch), batch["label"]),
        )
    ours = build_model(name, *dims).train()
    found["ours"] = (
        list(ours.parameters()),
        lambda batch: nn.functional.l1_loss(ours(batch).prediction, batch["label"]),
    )
    for penalty in penalties:
        measure = mdmest.make_measure(penalty, dims=ours.representation_dims).train()

        def penalised(batch: dict, measure: nn.Module = measure) -> torch.Tensor:
            out = ours(batch)
            task = nn.functional.l1_loss(out.prediction, batch["label"])
            return task + penalty_weight * measure(*out.representations)

        found[f"ours+{penalty}"] = (list(ours.parameters()) + list(measure.parameters()), penalised)
    return found, ours.DEFAULT_TRAINING["mosi"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    dims = (args.text_dim, args.audio_dim, args.video_dim)
    data = make_data(args.segments, args.steps, dims, args.lengths, seed=0)
    mmsa_classes = {} if args.no_mmsa else load_mmsa_classes()
    if not mmsa_classes and not args.no_mmsa:
        print("MMSA is not installed: timing mdmest's models only", file=sys.stderr)
    results: dict[str, Any] = {}
    for name in args.models:
        timed, training = variants(
            name, dims, args.steps, args.penalties, args.penalty_weight, mmsa_classes
        )
        seconds: dict[str, list[float]] = {variant: [] for variant in timed}
        for repeat in range(args.repeats):
            epoch = batches(data, int(training["batch_size"]), seed=repeat)
            for variant, (parameters, loss_of) in timed.items():
                seconds[variant].append(time_epoch(parameters, loss_of, training, epoch))
        median = {variant: statistics.median(values) for variant, values in seconds.items()}
        results[name] = {
            "batch_size": int(training["batch_size"]),
            "steps_per_epoch": math.ceil(args.segments / training["batch_size"]),
            "seconds_per_epoch": median,
            "all_seconds": seconds,
        }
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}s" for k, v in median.items()), flush=True)
    return results


def table(results: dict[str, Any], penalties: tuple[str, ...]) -> str:
    """Markdown table: seconds per epoch and ratios ours/MMSA and penalty/no penalty."""
    header = ["model", "batch", "MMSA s", "ours s", "ours/MMSA"]
    header += [f"+{p} s (×)" for p in penalties]
    lines = []
    for name, result in results.items():
        median = result["seconds_per_epoch"]
        ours, mmsa = median["ours"], median.get("mmsa")
        row = [
            name,
            str(result["batch_size"]),
            f"{mmsa:.2f}" if mmsa else "–",
            f"{ours:.2f}",
            f"{ours / mmsa:.2f}" if mmsa else "–",
        ]
        row += [f"{median[f'ours+{p}']:.2f} ({median[f'ours+{p}'] / ours:.2f})" for p in penalties]
        lines.append(row)
    return markdown_table(header, lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for fusion_speed.json")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--penalties", nargs="*", choices=PENALTIES, default=list(PENALTIES))
    parser.add_argument("--penalty-weight", type=float, default=0.1)
    parser.add_argument("--segments", type=int, default=1284, help="CMU-MOSI training split")
    parser.add_argument("--steps", type=int, default=50, help="aligned sequence length")
    parser.add_argument(
        "--lengths",
        choices=("full", "random"),
        default="full",
        help="full: every segment has --steps valid steps (the same work for MMSA, which ignores "
        "lengths); random: lengths uniform in [1, --steps]",
    )
    parser.add_argument("--text-dim", type=int, default=300, help="300 GloVe, 768 BERT")
    parser.add_argument("--audio-dim", type=int, default=74)
    parser.add_argument("--video-dim", type=int, default=47)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-mmsa", action="store_true", help="time mdmest's models only")
    args = parser.parse_args(argv)
    args.penalties = tuple(args.penalties)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.time()
    results = run(args)
    print(table(results, args.penalties))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "config": {key: str(value) for key, value in vars(args).items()},
        "machine": {**machine_info(), "load_average_at_end": os.getloadavg()},
        "wall_seconds": time.time() - start,
        "results": results,
        "table": table(results, args.penalties),
    }
    path = args.out / "fusion_speed.json"
    atomic_write_text(path, json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
