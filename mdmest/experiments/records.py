"""Benchmark runs as resumable records, and the tables and figures made from them.

What the scripts under ``benchmarks/`` share: each finished run is one JSON line appended to a
file at once ([`RunRecords`][mdmest.experiments.RunRecords]), so a stopped benchmark resumes where
it stopped ([`run_pending`][mdmest.experiments.run_pending] skips the runs already recorded);
runs of one cell are summarised against the truth (`error_statistics`), set out as Markdown
(`markdown_table`) and drawn (`pyplot`, `save_figure`: matplotlib, the ``bench`` extra, is imported
only when a figure is made).
"""

from __future__ import annotations

import csv
import functools
import json
import multiprocessing
import os
import warnings
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mdmest.io import atomic_open

__all__ = [
    "RunRecords",
    "error_statistics",
    "group_records",
    "markdown_table",
    "pyplot",
    "run_pending",
    "save_figure",
]


class RunRecords:
    """The runs of a benchmark: one JSON object a line, appended as each run finishes.

    A record is a dict of JSON values; ``key`` names the fields that tell runs apart (the setting,
    the task, the seed, ...). Appending writes one whole line in one call and syncs it to disk, so
    a run stopped at any moment leaves every earlier record intact; a line cut short by a crash is
    skipped when read (with a warning) and the next record starts on a line of its own.

    Parameters
    ----------
    path : str or PathLike
        The JSON-lines file (created on the first append).
    key : sequence of str
        The fields that identify a run: [`keys`][mdmest.experiments.RunRecords.keys] and
        [`by_key`][mdmest.experiments.RunRecords.by_key] use them.
    legacy : sequence of str or PathLike
        CSV files that earlier releases wrote the same runs to: read (never written) before
        ``path``, where they exist.
    fields : mapping of str to type
        How to read the legacy CSV's columns (``int``, ``float``, ``str``); an empty cell reads
        None and a column not named here a string.
    defaults : mapping
        Values of fields that older records lack (a column added since).

    Examples
    --------
    >>> import tempfile
    >>> runs = RunRecords(tempfile.mkdtemp() + "/runs.jsonl", key=["setting", "seed"])
    >>> runs.append({"setting": "dv", "seed": 0, "value": 0.98})
    >>> runs.keys(), runs.read()[0]["value"]
    ({('dv', 0)}, 0.98)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        key: Sequence[str],
        *,
        legacy: Sequence[str | os.PathLike] = (),
        fields: Mapping[str, type] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(key, str) or not key:
            raise ValueError(f"key must name one field or more, e.g. ['seed'], got {key!r}")
        self.path = Path(path)
        self.key = tuple(key)
        self.legacy = tuple(Path(p) for p in legacy)
        self.fields = dict(fields or {})
        self.defaults = dict(defaults or {})

    def read(self) -> list[dict]:
        """Every record: the legacy CSV rows, then the JSON lines, in the order written."""
        records = [row for path in self.legacy if path.exists() for row in self._read_csv(path)]
        if self.path.exists():
            records += self._read_lines(self.path)
        return [{**self.defaults, **r} for r in records]

    def key_of(self, record: Mapping[str, Any]) -> tuple:
        """The record's (or a job's) values of the ``key`` fields."""
        missing = [name for name in self.key if name not in record and name not in self.defaults]
        if missing:
            raise KeyError(f"a record needs the key fields {list(self.key)}; {missing} missing")
        return tuple(record[name] if name in record else self.defaults[name] for name in self.key)

    def keys(self) -> set[tuple]:
        """The keys of the runs recorded."""
        return {self.key_of(r) for r in self.read()}

    def by_key(self) -> dict[tuple, dict]:
        """The records by key (of runs recorded twice, the later)."""
        return {self.key_of(r): r for r in self.read()}

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one record to the file as one whole line, synced to disk."""
        self.key_of(record)
        line = json.dumps(dict(record), default=_plain) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            if os.fstat(fd).st_size and not _ends_with_newline(self.path):
                line = "\n" + line  # a line cut short by a crash stays a line of its own
            data = line.encode("utf-8")
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def extend(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append each record; returns how many."""
        count = 0
        for record in records:
            self.append(record)
            count += 1
        return count

    def _read_lines(self, path: Path) -> list[dict]:
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                warnings.warn(
                    f"{path}, line {number}: skipped, not a whole JSON record (a run cut short?)",
                    stacklevel=3,
                )
                continue
            records.append(record)
        return records

    def _read_csv(self, path: Path) -> list[dict]:
        with path.open(newline="") as f:
            return [
                {name: self._cell(name, text) for name, text in row.items()}
                for row in csv.DictReader(f)
            ]

    def _cell(self, name: str, text: str | None) -> Any:
        if text in ("", None):
            return None
        return self.fields.get(name, str)(text)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"a record holds JSON values; got {type(value).__name__}: {value!r}")


def run_pending(
    records: RunRecords,
    jobs: Iterable[Mapping[str, Any]],
    run: Callable[[dict], Mapping[str, Any]],
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "runs",
) -> int:
    """Run each job whose key is not recorded yet and append its record as soon as it finishes.

    Parameters
    ----------
    records : RunRecords
        Where the runs are recorded.
    jobs : iterable of dict
        One per run, holding at least the key fields; the record is the job's fields followed by
        what ``run`` returns.
    run : callable
        ``run(job)`` -> dict of the run's results. With ``workers`` > 1 it runs in spawned
        processes, so it must be picklable (a module-level function, or a ``functools.partial``
        of one).
    workers : int
        Processes running jobs at once; 1 runs them here, one after the other.
    progress : bool
        Show a progress bar.
    desc : str
        The progress bar's label.

    Returns
    -------
    int
        How many runs were made (the jobs recorded before are skipped).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    done = records.keys()
    pending = [dict(job) for job in jobs if records.key_of(job) not in done]
    complete = functools.partial(_complete, run)
    bar = functools.partial(tqdm, total=len(pending), desc=desc, unit="run", disable=not progress)
    if workers == 1 or len(pending) <= 1:
        for record in bar(map(complete, pending)):
            records.append(record)
        return len(pending)
    # spawned, not forked: safe with CUDA and with threads already started by torch
    with multiprocessing.get_context("spawn").Pool(min(workers, len(pending))) as pool:
        for record in bar(pool.imap_unordered(complete, pending)):
            records.append(record)
    return len(pending)


def _complete(run: Callable[[dict], Mapping[str, Any]], job: dict) -> dict:
    return {**job, **run(job)}


def group_records(
    records: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Hashable]
) -> dict[Hashable, list]:
    """The records by ``key(record)``, each group in the records' order (groups: first seen first)."""
    groups: dict[Hashable, list] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


def error_statistics(values: Sequence[float], truth: float) -> dict[str, float]:
    """Mean, bias, standard deviation, mean squared and mean absolute error of estimates of ``truth``.

    Examples
    --------
    >>> stats = error_statistics([0.9, 1.1], 1.0)
    >>> [round(stats[name], 3) for name in ("mean", "bias", "std", "mse", "mae")]
    [1.0, 0.0, 0.1, 0.01, 0.1]
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("error_statistics needs one value or more, got none")
    return {
        "mean": float(v.mean()),
        "bias": float(v.mean() - truth),
        "std": float(v.std()),
        "mse": float(np.mean((v - truth) ** 2)),
        "mae": float(np.abs(v - truth).mean()),
    }


def markdown_table(
    head: Sequence[str], rows: Iterable[Sequence[Any]], right: Collection[str] = ()
) -> str:
    """A Markdown table: ``head``'s names, then one line per row (cells as ``str`` gives them);
    the columns named in ``right`` are aligned right.

    Examples
    --------
    >>> print(markdown_table(["K", "value"], [[2, "0.98"], [3, "1.50"]]))
    | K | value |
    |---|---|
    | 2 | 0.98 |
    | 3 | 1.50 |
    """
    unknown = sorted(set(right) - set(head))
    if unknown:
        raise ValueError(f"right names columns {unknown} that are not in the head {list(head)}")
    rule = "".join("|---:" if name in right else "|---" for name in head) + "|"
    lines = ["| " + " | ".join(head) + " |", rule]
    for row in rows:
        if len(row) != len(head):
            raise ValueError(f"a row of {len(row)} cells under a head of {len(head)}: {row!r}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend; a one-line ImportError without it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "figures need matplotlib: pip install 'mdmest[bench]' (or skip the figure)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` atomically (format from the suffix) and close it."""
    path = Path(path)
    try:
        with atomic_open(path) as handle:
            fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    finally:
        pyplot().close(fig)
