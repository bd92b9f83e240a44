"""The one entry point of ``mdmest reproduce`` and ``benchmarks/reproduce.py``: check the request,
run (or resume) the grid, analyse it and write the report."""

from __future__ import annotations

import functools
import inspect
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mdmest._validation import require_extra
from mdmest.fusion.models import model_class, model_names
from mdmest.fusion.reproduce._analysis import analyse
from mdmest.fusion.reproduce._config import (
    ALL_MODELS,
    MIN_SEEDS,
    PENALTY_NAMES,
    WEIGHT_GRID,
    GridSpec,
)
from mdmest.fusion.reproduce._report import write_report
from mdmest.fusion.reproduce._runner import RunCache, run_grid, train_run
from mdmest.fusion.reproduce._sources import (
    TABULAR_SOURCES,
    backbone_note,
    check_source,
    default_folds,
    source_kind,
)

__all__ = ["KNOWN_MODELS", "ReproduceError", "check_request", "reproduce"]

KNOWN_MODELS = (*ALL_MODELS, *(m for m in model_names() if m not in ALL_MODELS))


class ReproduceError(ValueError):
    """A request that cannot run (bad model, too few seeds, missing data)."""


def check_request(
    data: str,
    models: Sequence[str],
    seeds: Sequence[int],
    penalties: Sequence[str],
    folds: int,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """Raise :class:`ReproduceError` on a bad request; return notes (models skipped)."""
    unknown = [m for m in models if m not in KNOWN_MODELS]
    if unknown:
        raise ReproduceError(f"unknown model(s) {unknown}; choose among {list(KNOWN_MODELS)}")
    bad = [p for p in penalties if p not in PENALTY_NAMES]
    if bad or "none" not in penalties:
        raise ReproduceError(
            f"penalties must include 'none' and be among {list(PENALTY_NAMES)}; got {list(penalties)}"
        )
    if len(set(seeds)) < MIN_SEEDS:
        raise ReproduceError(
            f"at least {MIN_SEEDS} distinct seeds are needed for a paired test, got {len(set(seeds))}"
        )
    for model, kwargs in (model_kwargs or {}).items():
        if model not in models:
            raise ReproduceError(
                f"model options for {model!r}, which is not among the models run {list(models)}"
            )
        valid = _constructor_keywords(model)
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ReproduceError(
                f"unknown option(s) {unknown} of model {model!r}; valid: {', '.join(valid)}"
            )
    if folds and folds < 3:
        raise ReproduceError(f"--folds must be 0 (fixed splits) or >= 3, got {folds}")
    try:
        check_source(data)
    except (FileNotFoundError, ValueError) as error:
        raise ReproduceError(str(error)) from None
    tabular = source_kind(data) in TABULAR_SOURCES
    if tabular and any(not m.startswith("mlp") for m in models):
        raise ReproduceError(f"{data} has tabular views: use --models mlp (or mlp_linear)")
    if not tabular and any(m.startswith("mlp") for m in models) and source_kind(data) != "planted":
        raise ReproduceError("the mlp model is for tabular or planted data only")
    return [note for m in models if (note := backbone_note(m))]


def _constructor_keywords(model: str) -> list[str]:
    """The keyword-only settings of a model's constructor (what ``--model-option`` may set)."""
    parameters = inspect.signature(model_class(model).__init__).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def reproduce(
    data: str,
    *,
    models: Sequence[str] | None = None,
    penalties: Sequence[str] = PENALTY_NAMES,
    seeds: Sequence[int] = tuple(range(10)),
    weights: Sequence[float] = WEIGHT_GRID,
    folds: int | None = None,
    epochs: int = 20,
    patience: int = 5,
    max_steps_per_epoch: int | None = None,
    measure_kwargs: dict[str, dict[str, Any]] | None = None,
    data_options: dict[str, Any] | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    out: str | Path = "results/reproduce",
    cache: str | Path | None = None,
    workers: int = 1,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
    train: Callable = train_run,
    command: str = "",
) -> dict[str, Any]:
    """Run the grid (resuming from ``cache``, default ``out/runs``), analyse and write the report.

    Returns the analysis dict (see :func:`mdmest.fusion.reproduce._analysis.analyse`). Raises
    ``MissingExtraError`` before any run when matplotlib (the report's Fig. 2) is missing.
    """
    require_extra("matplotlib", "the report's plots (Fig. 2)")
    if models is None:
        models = ("mlp",) if source_kind(data) in TABULAR_SOURCES else ALL_MODELS
    folds = default_folds(data) if folds is None else folds
    notes = check_request(data, models, seeds, penalties, folds, model_kwargs)
    for note in notes:
        log(note)
    runnable = tuple(m for m in models if backbone_note(m) is None)
    spec = GridSpec(
        data=data,
        models=runnable,
        penalties=tuple(penalties),
        seeds=tuple(seeds),
        weights=tuple(float(w) for w in weights),
        folds=folds,
        epochs=epochs,
        patience=patience,
        max_steps_per_epoch=max_steps_per_epoch,
        measure_kwargs=dict(measure_kwargs or {}),
        data_options=dict(data_options or {}),
        model_kwargs={m: dict(kw) for m, kw in (model_kwargs or {}).items()},
    )
    out = Path(out)
    run_cache = RunCache(cache if cache is not None else out / "runs")
    started = time.perf_counter()
    if device != "cpu":
        train = functools.partial(train, device=device)
    records = run_grid(
        spec.runs(), run_cache, workers=workers, train=train, progress=progress, log=log
    )
    analysis = analyse(records)
    header = {
        "data": data,
        "command": f"`{command}`" if command else "(python API)",
        "models": ", ".join(runnable) + ("" if not notes else f" ({'; '.join(notes)})"),
        "penalties": ", ".join(penalties),
        "seeds": f"{len(seeds)} ({min(seeds)}..{max(seeds)})",
        "folds": f"{folds} (repeated K-fold, folds pooled per seed)" if folds else "fixed splits",
        "penalty weight grid (chosen per seed on validation)": ", ".join(f"{w:g}" for w in weights),
        "epochs (best on validation MAE), patience": f"{epochs}, {patience}",
        "measure kwargs": measure_kwargs or "library defaults (Trainer rule)",
        **({"model kwargs (replacing the presets')": model_kwargs} if model_kwargs else {}),
        "hardware": f"{platform.machine()} {device}, 1 thread per run, {workers} worker(s)",
        "wall time of this call": f"{(time.perf_counter() - started) / 60:.1f} min",
    }
    path = write_report(out, records, analysis, header)
    log(f"report: {path}")
    return analysis
