"""Train one run of the grid, cache its record by the hash of its configuration, run a grid.

Each finished run is one JSON file ``<cache>/<key>.json`` (written atomically with
:func:`mdmest.io.atomic_write_text`), so an interrupted or extended grid resumes and never trains
a finished run twice. ``workers > 1`` runs cells in parallel spawned processes with one thread each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from mdmest.fusion.reproduce._config import KEEP, RunConfig
from mdmest.io import atomic_write_text

__all__ = ["RunCache", "run_grid", "train_run"]


class RunCache:
    """One JSON per finished run in ``folder``, named by :meth:`RunConfig.key`."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path(self, config: RunConfig) -> Path:
        return self.folder / f"{config.key()}.json"

    def get(self, config: RunConfig) -> dict[str, Any] | None:
        path = self.path(config)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return record if record.get("config") == config.to_dict() else None

    def put(self, config: RunConfig, record: dict[str, Any]) -> None:
        atomic_write_text(self.path(config), json.dumps(record))


def _build(config: RunConfig, dataset, device: str = "cpu"):
    from mdmest.fusion.training import TrainConfig

    d_text, d_audio, d_video = dataset.dims
    common = dict(
        epochs=config.epochs,
        penalty=config.penalty,
        penalty_weight=config.weight,
        measure_kwargs=dict(config.measure_kwargs),
        patience=config.patience,
        max_steps_per_epoch=config.max_steps_per_epoch,
        select_on=config.select_on,
        seed=config.seed,
        progress=False,
        device=device,
    )
    from mdmest.fusion.models import build_model

    preset = dataset.preset or "mosi"
    train = TrainConfig.for_model(config.model, preset, **common)
    model = build_model(
        config.model, d_text or 0, d_audio, d_video, dataset=preset, **config.model_kwargs
    )
    return model, train


def train_run(config: RunConfig, device: str = "cpu") -> dict[str, Any]:
    """Train ``config`` and return its record: validation and test metrics of the epoch chosen on
    validation, test metrics with text dropped (Fig. 2), test predictions alone and with modalities
    dropped (text only, audio+video only: Tab. 3's agreement), and the critic's scores."""
    import torch

    from mdmest.fusion.models import model_class
    from mdmest.fusion.reproduce._sources import load_run_data
    from mdmest.fusion.training import Trainer, drop_ratios, seed_everything

    torch.set_num_threads(1)
    reads_words = model_class(config.model).reads_words
    # ``device`` is not part of the run's key: a run on a GPU stands for the same configuration.
    dataset = load_run_data(
        config.data,
        seed=config.seed,
        fold=config.fold,
        folds=config.folds,
        text_features=not reads_words,
        options=config.data_options,
    )
    seed_everything(config.seed)  # the same initialisation for every penalty of a seed
    model, train_config = _build(config, dataset, device)
    start = time.perf_counter()
    trainer = Trainer(model, dataset, train_config)
    summary = trainer.fit()
    full = trainer.predict("test")
    test = full.metrics()
    record: dict[str, Any] = {
        "config": config.to_dict(),
        "key": config.key(),
        "measure_kwargs": dict(trainer.config.measure_kwargs),
        "best_epoch": summary["best_epoch"],
        "epochs_run": summary["epochs_run"],
        "valid": summary["best_valid"],
        "test": test,
        "drop": {},
        "test_ids": list(full.ids),
        "test_labels": full.labels.tolist(),
        "test_predictions": full.predictions.tolist(),
        "scores": None if full.scores is None else full.scores.tolist(),
        "words": {s.id: " ".join(s.words or [])[:160] for s in dataset["test"].segments},
    }
    for kept, drop in KEEP.items():
        corrupted = trainer.predict("test", drop=drop)
        metrics = corrupted.metrics()
        record["drop"][kept] = {
            **drop_ratios(metrics, test),
            "metrics": metrics,
            "predictions": corrupted.predictions.tolist(),
        }
    text_only = trainer.predict("test", drop=("audio", "video"))
    record["text_only_predictions"] = text_only.predictions.tolist()
    record["seconds"] = time.perf_counter() - start
    record["threads"] = torch.get_num_threads()
    record["device"] = device
    return record


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_grid(
    runs: Sequence[RunConfig],
    cache: RunCache,
    *,
    workers: int = 1,
    train: Callable[[RunConfig], dict[str, Any]] = train_run,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every run not yet in ``cache`` and return the records of all runs, in order.

    Finished runs are read back and never trained again. The progress bar counts the whole grid
    (cached runs are counted as done at the start), so its rate and time left refer to the runs
    still to train. ``train`` is the training function (a module-level function with
    ``workers > 1``).
    """
    from tqdm.auto import tqdm

    # Each cached record is read once; a trained one is read back as written (JSON types).
    records = {r.key(): cache.get(r) for r in runs}
    todo = [r for r in runs if records[r.key()] is None]
    bar = tqdm(
        total=len(runs),
        initial=len(runs) - len(todo),
        desc="reproduce grid",
        unit="run",
        disable=not progress,
        smoothing=0.1,
    )
    if log is not None:
        log(f"{len(runs)} runs in the grid, {len(runs) - len(todo)} cached, {len(todo)} to train")

    def done(config: RunConfig, record: dict[str, Any]) -> None:
        cache.put(config, record)
        records[config.key()] = cache.get(config)
        bar.update()
        bar.set_postfix_str(config.name())

    try:
        if workers <= 1:
            for config in todo:
                done(config, train(config))
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
                pending = {pool.submit(train, c): c for c in todo}
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        done(pending.pop(future), future.result())
    finally:
        bar.close()
    return [records[r.key()] for r in runs]
