"""Both rules on the fourth judging draw, read off the records: the defaults (``deeper`` from
nothing, ``runs.jsonl``) and the earlier rule (``deeper`` from the fitted mixture where the
first critic started from one, ``deeper_from_mixture.jsonl``).

    python docs/results/random_tasks_judging_4/compare.py docs/results/random_tasks_judging_4

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
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def earlier_rule(record: dict, alternative: dict | None) -> tuple[float, str]:
    """(value, chosen) with ``deeper`` trained from the mixture, where that differs."""
    candidates = dict(record["candidates"])
    if alternative is not None:
        candidates["deeper"] = alternative
    chosen = max(candidates, key=lambda k: candidates[k]["validation"])
    return candidates[chosen]["test"], chosen


def main(folder: str) -> None:
    root = Path(folder)
    records = _read(root / "runs.jsonl")
    alternatives = {r["seed"]: r for r in _read(root / "deeper_from_mixture.jsonl")}
    mdmest = sorted(
        (r for r in records if r["estimator"] == "mdmest" and r["truth"] >= FROM),
        key=lambda r: r["seed"],
    )[:TASKS]
    peers: dict[str, dict[int, float]] = {}
    for r in records:
        if r["estimator"] != "mdmest":
            peers.setdefault(r["estimator"], {})[r["seed"]] = r["rel_error"]
    rows = []
    for r in mdmest:
        old, old_chosen = earlier_rule(r, alternatives.get(r["seed"]))
        rows.append((r, r["rel_error"], old / r["truth"] - 1, old_chosen))

    def line(name: str, errors: list[float]) -> str:
        absolute = [abs(e) for e in errors]
        return (
            f"| {name} | {len(errors)} | {100 * statistics.mean(absolute):.1f}% | "
            f"{100 * statistics.median(absolute):.1f}% | {sum(e < -0.2 for e in errors)} | "
            f"{sum(e > 0.1 for e in errors)} |"
        )

    print("| rule | tasks | mean abs. rel. error | median | below -20% | above +10% |")
    print("|---|---|---|---|---|---|")
    print(line("defaults (deeper from nothing)", [x[1] for x in rows]))
    print(line("earlier rule (deeper from the mixture)", [x[2] for x in rows]))
    two = [x for x in rows if x[0]["views"] == 2]
    for name, errors in (
        ("defaults, two-view", [x[1] for x in two]),
        ("earlier rule, two-view", [x[2] for x in two]),
        *(
            (f"{peer}, two-view", [v[x[0]["seed"]] for x in two if x[0]["seed"] in v])
            for peer, v in sorted(peers.items())
        ),
    ):
        if errors:
            print(line(name, errors))
    seconds = [x[0]["seconds"] for x in rows]
    print(
        f"\nSeconds per task (defaults): median {statistics.median(seconds):.1f}, "
        f"slowest {max(seconds):.1f}; deeper from the mixture trained on "
        f"{len(alternatives)} tasks; the rules differ on "
        f"{sum(abs(x[1] - x[2]) > 1e-12 for x in rows)}.\n"
    )
    print("| seed | structure | dims | truth | defaults | chosen | earlier rule | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    for r, new, old, old_chosen in rows:
        if abs(new - old) > 1e-12:
            kind = r["structure"] + (f":{r['base_structure']}" if r.get("base_structure") else "")
            dims = "×".join(map(str, r["dims"]))
            print(
                f"| {r['seed']} | {kind} | {dims} | {r['truth']:.2f} | {100 * new:+.1f}% | "
                f"{r['chosen']} | {100 * old:+.1f}% | {old_chosen} |"
            )


if __name__ == "__main__":
    main(sys.argv[1])
