"""The paper's Fig. 1: DV, f-KL and Wasserstein estimates against the truth on Gaussian views.

Two views (default): X, Y ∈ R^d with corr(X_i, Y_j) = ρ·δ_ij on a grid of ρ, true MI
−(d/2)·log(1 − ρ²). K ≥ 3 views (``--views K``): Gaussian views at chosen total-correlation levels
(:func:`mdmest.tasks.gaussian_task_with_tc`). Each measure is trained with one critic budget on
several seeds (:func:`mdmest.estimate`); the Wasserstein estimates are shown beside POT's empirical
W1 between joint and shuffled rows, the same reference on independent views (its sample-size bias
alone) and the closed-form W2 upper bound. Results go to ``--out`` as CSV, JSON and a PNG.

Usage::

    mdmest gaussian --quick                # 18 trainings, one process per core
    mdmest gaussian                        # the full grid
    mdmest gaussian --views 3 --quick      # three views at chosen TC levels
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mdmest._validation import check_choice, require_extra
from mdmest.estimation import EstimateConfig, estimate
from mdmest.experiments.machine import machine_info
from mdmest.io import atomic_open, atomic_write_text
from mdmest.reference import wasserstein_dependency
from mdmest.sampling import SAMPLERS
from mdmest.tasks import GaussianTask, correlated_pair, gaussian_task_with_tc

__all__ = [
    "GaussianConfig",
    "QUICK",
    "FULL",
    "MEASURE_LABELS",
    "make_tasks",
    "run_experiment",
    "summarize",
    "format_table",
    "plot_summary",
    "write_results",
]

MEASURE_LABELS: dict[str, str] = {
    "dv": "DV",
    "f": "f-KL",
    "wasserstein": "W (GP)",
}
#: Extra options of each measure in the figure: KL for the f measure (the NWJ bound), the gradient
#: penalty for Wasserstein (the paper's choices).
MEASURE_OPTIONS: dict[str, dict] = {
    "dv": {},
    "f": {"divergence": "kl"},
    "wasserstein": {"lipschitz": "gradient_penalty"},
}


@dataclass(frozen=True)
class GaussianConfig:
    """One run of the experiment.

    Attributes
    ----------
    views : int
        Number of views K (2 reproduces Fig. 1).
    dim : int
        Features per view.
    grid : tuple of float
        ρ values (K = 2) or total-correlation levels in nats (K ≥ 3).
    measures : tuple of str
        Measures to train, among ``MEASURE_LABELS``.
    seeds : int
        Seeds per point (each seed draws new rows and a new critic).
    steps, batch_size, lr : int, int, float
        Critic budget of :func:`mdmest.estimate`, the same for every measure.
    lr_schedule : str or None
        Learning-rate schedule of :func:`mdmest.estimate` ("cosine" decays it to 0; ``None``).
    n_samples : int
        Rows drawn per point and seed (20% held out for the reported value).
    n_reference : int
        Rows for POT's exact W1 reference (O(n^3): keep it to a few thousand).
    sampler : str
        Negative sampler, a key of :data:`mdmest.sampling.SAMPLERS`.
    negatives : int
        Product rows per joint row.
    """

    views: int = 2
    dim: int = 5
    grid: tuple[float, ...] = (0.0, 0.5, 0.9)
    measures: tuple[str, ...] = tuple(MEASURE_LABELS)
    seeds: int = 2
    steps: int = 500
    batch_size: int = 256
    lr: float = 2e-3
    lr_schedule: str | None = "cosine"
    n_samples: int = 10_000
    n_reference: int = 1000
    sampler: str = "shifted"
    negatives: int = 1

    def __post_init__(self) -> None:
        if self.views < 2:
            raise ValueError(f"views must be >= 2, got {self.views}")
        for measure in self.measures:
            check_choice("measure", measure, tuple(MEASURE_LABELS))
        check_choice("sampler", self.sampler, tuple(SAMPLERS))
        for name in (
            "dim",
            "seeds",
            "steps",
            "batch_size",
            "n_samples",
            "n_reference",
            "negatives",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.grid:
            raise ValueError("grid is empty: give at least one point")
        for x in self.grid:
            if self.views == 2 and not -1 < x < 1:
                raise ValueError(
                    f"grid: with 2 views each point is a correlation rho in (-1, 1), got {x:g}"
                )
            if self.views > 2 and not (math.isfinite(x) and x >= 0):
                raise ValueError(
                    f"grid: with {self.views} views each point is a total correlation in nats, a "
                    f"finite number >= 0, got {x:g}"
                )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")

    @property
    def grid_name(self) -> str:
        """What the grid holds: "rho" for two views, "tc" (nats) for more."""
        return "rho" if self.views == 2 else "tc"


#: ``--quick`` (the README's demo: 18 trainings of 500 steps) and the full figure (63 of 1000 steps).
QUICK = GaussianConfig()
FULL = GaussianConfig(
    grid=(0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
    seeds=3,
    steps=1000,
    n_samples=20_000,
    n_reference=2000,
)
#: Fig. 1 compares the measures' trained critics: none starts from a fitted Gaussian mixture
#: (on Gaussian views the mixture is the Gaussian log-ratio, and "dv" and "f" would read it).
_FROM_SCRATCH = EstimateConfig(mixture_max_components=0)
#: Defaults of the grid for K ≥ 3 views (TC levels in nats).
MULTIVIEW_GRID = {"quick": (0.0, 1.0, 2.0, 4.0), "full": (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)}


def make_tasks(config: GaussianConfig) -> list[tuple[float, GaussianTask]]:
    """The task of each grid point: correlated pairs (K = 2) or K views at a TC level."""
    if config.views == 2:
        return [(x, correlated_pair(x, config.dim)) for x in config.grid]
    return [(x, gaussian_task_with_tc(x, [config.dim] * config.views)) for x in config.grid]


def run_experiment(
    config: GaussianConfig, *, progress: bool = True, workers: int = 1
) -> list[dict]:
    """Train every measure on every grid point and seed; compute the W references.

    Parameters
    ----------
    config : GaussianConfig
        The grid, measures, seeds and budget.
    progress : bool
        Show a progress bar (one tick per training run and per POT reference).
    workers : int
        Processes that run the trainings and references side by side, one torch thread each
        (``torch.get_num_threads()`` of the caller). Every run draws its rows and its critic from
        its own seeds, so the records are the same whatever ``workers``; warnings raised in a
        worker are raised again here.

    Returns
    -------
    list of dict
        One record per (grid point, measure, seed) with keys ``x``, ``true_tc``, ``measure``,
        ``seed``, ``estimate``, ``seconds``; plus, per grid point, records with ``measure`` equal to
        "w1_pot" (exact OT between joint and shuffled rows), "w1_pot_independent" (the same on
        independent views: the reference's bias alone) and "w2_upper" (closed-form W2 ≥ W1).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    tasks = make_tasks(config)
    independent = make_tasks(GaussianConfig(views=config.views, dim=config.dim, grid=(0.0,)))[0][1]
    with_w = "wasserstein" in config.measures
    # Every job: (label, function, arguments); the trainings first, then the POT references.
    jobs: list[tuple[str, tuple]] = [
        (f"{config.grid_name}={x:g} {MEASURE_LABELS[m]} seed={s}", ("train", config, task, m, s))
        for x, task in tasks
        for m in config.measures
        for s in range(config.seeds)
    ]
    if with_w:
        jobs.append((f"exact OT (POT) on {config.n_reference} rows, independent views",
                     ("pot", config, independent, None, 0)))  # fmt: skip
        jobs += [
            (f"exact OT (POT) on {config.n_reference} rows, {config.grid_name}={x:g}",
             ("pot", config, task, None, 0))
            for x, task in tasks
        ]  # fmt: skip
    bar = tqdm(total=len(jobs), desc="gaussian", unit="run", disable=not progress)
    outcomes: list[tuple[float, float, list] | None] = [None] * len(jobs)
    workers = min(workers, len(jobs))
    if workers == 1:
        for i, (label, job) in enumerate(jobs):
            bar.set_postfix_str(label)
            outcomes[i] = _run_job(*job, capture=False)
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        bar.set_postfix_str(f"{workers} processes")
        context = multiprocessing.get_context("spawn")
        threads = torch.get_num_threads()
        with ProcessPoolExecutor(
            workers, context, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(_run_job, *job): i for i, (_, job) in enumerate(jobs)}
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                bar.update()
        for _, _, caught in outcomes:
            for message, category in caught:
                warnings.warn(message, category, stacklevel=2)
    bar.close()
    trained = len(jobs) - (len(tasks) + 1 if with_w else 0)
    records = []
    for (_, (_, _, task, name, seed)), (value, seconds, _) in zip(jobs, outcomes[:trained]):
        x = config.grid[next(i for i, (_, t) in enumerate(tasks) if t is task)]
        records.append(_record(x, task, name, seed, value, seconds=seconds))
    if with_w:
        null = outcomes[trained][0]
        for (x, task), (value, _, _) in zip(tasks, outcomes[trained + 1 :]):
            records.append(_record(x, task, "w1_pot", 0, value))
            records.append(_record(x, task, "w1_pot_independent", 0, null))
            records.append(_record(x, task, "w2_upper", 0, task.w2_dependency))
    return records


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_job(
    kind: str, config: GaussianConfig, task: GaussianTask, name: str | None, seed: int,
    capture: bool = True,
) -> tuple[float, float, list]:  # fmt: skip
    """One training run (``kind="train"``) or one POT reference (``"pot"``): (value, seconds, the
    warnings it raised as (message, category) when ``capture``)."""
    with warnings.catch_warnings(record=capture) as caught:
        start = time.perf_counter()
        if kind == "pot":
            value = wasserstein_dependency(*task.sample(config.n_reference, seed=999))
        else:
            result = estimate(
                task.sample(config.n_samples, seed=1000 + seed),
                name,
                steps=config.steps,
                batch_size=config.batch_size,
                lr=config.lr,
                lr_schedule=config.lr_schedule,
                seed=seed,
                progress=False,
                negatives=config.negatives,
                sampler=SAMPLERS[config.sampler],
                candidates=["critic"],  # every measure its own trained critic, same budget,
                config=_FROM_SCRATCH,  # trained from nothing, not from a fitted mixture
                **MEASURE_OPTIONS[name],
            )
            value = result.value
        seconds = time.perf_counter() - start
    notes = [(str(w.message), w.category) for w in caught] if capture else []
    return float(value), seconds, notes


def _record(
    x: float, task: GaussianTask, measure: str, seed: int, value: float, seconds: float = 0.0
) -> dict:
    return {
        "x": float(x),
        "true_tc": task.total_correlation,
        "measure": measure,
        "seed": seed,
        "estimate": float(value),
        "seconds": round(float(seconds), 3),
    }


def summarize(records: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation (over seeds) of each measure at each grid point.

    Returns one dict per grid point: ``x``, ``true_tc`` and, for each measure, ``<measure>_mean``
    and ``<measure>_std`` (population std; 0 for a single seed or a reference).
    """
    points: dict[float, dict] = {}
    for r in records:
        points.setdefault(r["x"], {"x": r["x"], "true_tc": r["true_tc"], "values": {}})
        points[r["x"]]["values"].setdefault(r["measure"], []).append(r["estimate"])
    summary = []
    for x in sorted(points):
        row = {"x": x, "true_tc": points[x]["true_tc"]}
        for name, values in points[x]["values"].items():
            row[f"{name}_mean"] = float(np.mean(values))
            row[f"{name}_std"] = float(np.std(values))
        summary.append(row)
    return summary


def format_table(summary: Sequence[dict], config: GaussianConfig) -> str:
    """A plain-text table: grid value, truth, each estimate (mean ± std) and the W references."""
    truth = "true MI" if config.views == 2 else "true TC"
    columns = [(config.grid_name, 6), (truth, 8)]
    columns += [(MEASURE_LABELS[m], 13) for m in config.measures]
    has_w = "wasserstein" in config.measures
    if has_w:
        columns += [("W1 POT", 7), ("indep.", 7), ("W2 bound", 8)]
    lines = ["  ".join(name.rjust(width) for name, width in columns)]
    for row in summary:
        cells = [f"{row['x']:6.2f}", f"{row['true_tc']:8.3f}"]
        cells += [f"{row[f'{m}_mean']:6.3f} ± {row[f'{m}_std']:4.2f}" for m in config.measures]
        if has_w:
            cells += [
                f"{row['w1_pot_mean']:7.3f}",
                f"{row['w1_pot_independent_mean']:7.3f}",
                f"{row['w2_upper_mean']:8.3f}",
            ]
        lines.append("  ".join(cells))
    units = "nats (DV, f-KL); W columns in the views' units"
    return "\n".join([*lines, f"({units}; mean ± std over {config.seeds} seeds)"])


def plot_summary(summary: Sequence[dict], config: GaussianConfig, path: str | Path) -> Path:
    """Plot the estimates (mean ± std) against the grid: the KL measures beside the truth (left),
    the Wasserstein estimate beside its references (right). Needs matplotlib (``bench`` extra)."""
    require_extra("matplotlib", "plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([row["x"] for row in summary])
    has_w = "wasserstein" in config.measures
    kl_measures = [m for m in config.measures if m != "wasserstein"]
    fig, axes = plt.subplots(1, 2 if has_w and kl_measures else 1, figsize=(11, 4.2), squeeze=False)
    axes = list(axes[0])
    xlabel = r"component-wise correlation $\rho$" if config.views == 2 else "true TC (nats)"
    if kl_measures:
        ax = axes.pop(0)
        truth_label = "true MI" if config.views == 2 else "true TC"
        ax.plot(x, [row["true_tc"] for row in summary], "k--", label=truth_label)
        for m in kl_measures:
            _errorbar(ax, x, summary, m, MEASURE_LABELS[m])
        ax.set(xlabel=xlabel, ylabel="nats", title=f"KL measures, K={config.views}, d={config.dim}")
        ax.legend()
    if has_w:
        ax = axes.pop(0)
        _errorbar(ax, x, summary, "wasserstein", "neural W (gradient penalty)")
        ax.plot(x, [row["w1_pot_mean"] for row in summary], "s-", label="W1, exact OT (POT)")
        ax.plot(
            x,
            [row["w1_pot_independent_mean"] for row in summary],
            ":",
            label="exact OT on independent views (bias)",
        )
        ax.plot(x, [row["w2_upper_mean"] for row in summary], "k--", label="W2 (closed form) ≥ W1")
        ax.set(xlabel=xlabel, ylabel="views' units", title="Wasserstein dependency")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{config.seeds} seeds, {config.steps} steps × batch {config.batch_size}, "
        f"{config.n_samples} rows, lr {config.lr:g} ({config.lr_schedule or 'constant'}), "
        f"sampler={config.sampler}, negatives={config.negatives}",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path) as handle:
        fig.savefig(handle, dpi=120, format="png")
    plt.close(fig)
    return path


def _errorbar(ax, x: np.ndarray, summary: Sequence[dict], measure: str, label: str) -> None:
    mean = np.array([row[f"{measure}_mean"] for row in summary])
    std = np.array([row[f"{measure}_std"] for row in summary])
    ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)


def write_results(
    records: Sequence[dict],
    summary: Sequence[dict],
    config: GaussianConfig,
    out: str | Path,
    *,
    seconds: float,
    plot: bool = True,
    warnings: Sequence[dict] = (),
) -> dict[str, Path]:
    """Write ``records.csv``, ``summary.json`` (config, machine, summary, the mdmest version and
    ``warnings``, the warnings shown while the experiment ran) and ``gaussian.png``, each
    atomically (a symbolic link is written through to its target)."""
    from mdmest import __version__

    if plot:
        require_extra("matplotlib", "plots")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gaussian" if config.views == 2 else f"gaussian_k{config.views}"
    paths = {"records": out / f"{stem}_records.csv", "summary": out / f"{stem}_summary.json"}
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(paths["records"], table.getvalue())
    meta = {
        "config": asdict(config),
        "seconds": round(seconds, 1),
        "machine": machine_info(),
        "summary": summary,
        "mdmest_version": __version__,
        "warnings": [dict(w) for w in warnings],
    }
    atomic_write_text(paths["summary"], json.dumps(meta, indent=2) + "\n")
    if plot:
        paths["figure"] = plot_summary(summary, config, out / f"{stem}.png")
    return paths
