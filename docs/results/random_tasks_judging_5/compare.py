"""Both defaults on the fifth judging draw, read off the records: the new one (the mixture
start may be block-diagonal by view, ``runs.jsonl``) and the earlier one (full covariances
only, ``full_covariance.jsonl`` where the two differ).

    python docs/results/random_tasks_judging_5/compare.py docs/results/random_tasks_judging_5

Counts the first 60 tasks of the draw with truth of at least 0.3 nats, in seed order (the rule
written down before the run); prints a markdown summary.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TASKS, FROM = 60, 0.3


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _line(name: str, errors: list[float]) -> str:
    absolute = [abs(e) for e in errors]
    return (
        f"| {name} | {len(errors)} | {100 * statistics.mean(absolute):.1f}% | "
        f"{100 * statistics.median(absolute):.1f}% | {sum(e < -0.2 for e in errors)} | "
        f"{sum(e > 0.1 for e in errors)} |"
    )


def main(folder: str) -> None:
    root = Path(folder)
    records = _read(root / "runs.jsonl")
    earlier = {r["seed"]: r for r in _read(root / "full_covariance.jsonl")}
    mdmest = sorted(
        (r for r in records if r["estimator"] == "mdmest" and r["truth"] >= FROM),
        key=lambda r: r["seed"],
    )[:TASKS]
    missing = [
        r["seed"]
        for r in mdmest
        if r["candidates"]["critic"].get("start_covariance") == "block" and r["seed"] not in earlier
    ]
    if missing:
        raise SystemExit(f"full_covariance.jsonl lacks the earlier default on seeds {missing}")
    peers: dict[str, dict[int, float]] = {}
    for r in records:
        if r["estimator"] != "mdmest":
            peers.setdefault(r["estimator"], {})[r["seed"]] = r["rel_error"]
    rows = []
    for r in mdmest:
        old = earlier.get(r["seed"], {"rel_error": r["rel_error"], "chosen": r["chosen"]})
        rows.append((r, r["rel_error"], old["rel_error"], old["chosen"]))

    print("| rule | tasks | mean abs. rel. error | median | below -20% | above +10% |")
    print("|---|---|---|---|---|---|")
    print(_line("defaults (block mixtures too)", [x[1] for x in rows]))
    print(_line("earlier default (full covariances)", [x[2] for x in rows]))
    two = [x for x in rows if x[0]["views"] == 2]
    for name, errors in (
        ("defaults, two-view", [x[1] for x in two]),
        ("earlier default, two-view", [x[2] for x in two]),
        *(
            (f"{peer}, two-view", [v[x[0]["seed"]] for x in two if x[0]["seed"] in v])
            for peer, v in sorted(peers.items())
        ),
    ):
        if errors:
            print(_line(name, errors))
    seconds = [x[0]["seconds"] for x in rows]
    print(
        f"\nSeconds per task (defaults): median {statistics.median(seconds):.1f}, "
        f"slowest {max(seconds):.1f}; a block mixture started the first critic on "
        f"{len(earlier)} tasks; the defaults differ on "
        f"{sum(abs(x[1] - x[2]) > 1e-12 for x in rows)}.\n"
    )
    print("| seed | structure | dims | truth | defaults | chosen | earlier default | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    for r, new, old, old_chosen in rows:
        if abs(new - old) > 1e-12:
            kind = r["structure"] + (f":{r['base_structure']}" if r.get("base_structure") else "")
            dims = "×".join(map(str, r["dims"]))
            print(
                f"| {r['seed']} | {kind} | {dims} | {r['truth']:.2f} | {100 * new:+.1f}% | "
                f"{r['chosen']} | {100 * old:+.1f}% | {old_chosen} |"
            )
    structures: dict[str, list[tuple[float, float]]] = {}
    for r, new, old, _ in rows:
        structures.setdefault(r["structure"], []).append((new, old))
    print("\n| structure | tasks | defaults | earlier default |")
    print("|---|---|---|---|")
    for name, pairs in sorted(structures.items()):
        print(
            f"| {name} | {len(pairs)} | {100 * statistics.mean(abs(a) for a, _ in pairs):.1f}% | "
            f"{100 * statistics.mean(abs(b) for _, b in pairs):.1f}% |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
