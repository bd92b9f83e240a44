"""Write what a grid found: ``report.md`` (claims, Tables 1-2, Fig. 2, Tab. 3), ``analysis.json``,
``runs.json`` (every run) and ``fig2_modality_drop.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mdmest.fusion.reproduce._analysis import select_runs
from mdmest.fusion.reproduce._config import KEEP, TABLE_METRICS
from mdmest.io import atomic_write_text

__all__ = ["plot_fig2", "tab3_rows", "write_report"]

CLAIMS = {
    "C1": "the penalty improves EF-LSTM (Acc-2 non0; MLP on tabular views)",
    "C2": "the penalty improves MFN, LMF, MAG-BERT, MAG-XLNet (Acc-2 non0)",
    "C3": "more robust when text is dropped at inference (Acc-2 ratio keeping audio+video, Fig. 2)",
    "C4": "the critic scores segments whose modalities agree higher (Tab. 3; Mann–Whitney AUC)",
}
_MARK = {"better": "▲ better", "worse": "▼ worse", "no detectable difference": "·"}


def _f(x: float, digits: int = 3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "nan" if p is None or math.isnan(p) else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


def _cell(entry: dict[str, Any]) -> str:
    if "diff" not in entry:
        return f"{_f(entry['mean'])} ± {_f(entry['std'])}"
    return (
        f"{_f(entry['mean'])} ± {_f(entry['std'])}<br>Δ {entry['diff']:+.3f} "
        f"[{_f(entry['ci_low'])}, {_f(entry['ci_high'])}] p={_p(entry['p'])} "
        f"{_MARK[entry['verdict']]}"
    )


def tab3_rows(records: list[dict[str, Any]], model: str, penalty: str, k: int = 5) -> list[dict]:
    """Top and bottom ``k`` test segments by critic score of the first selected run of
    (model, penalty), with words, label and the two unimodal predictions."""
    chosen = select_runs(records)
    keys = sorted(key for key in chosen if key[0] == model and key[1] == penalty)
    if not keys or chosen[keys[0]].get("scores") is None:
        return []
    r = chosen[keys[0]]
    av = r["drop"]["audio+video"]["predictions"]
    rows = [
        {
            "id": i,
            "score": s,
            "label": y,
            "text_only": t,
            "audio_video": a,
            "agree": (t > 0) == (a > 0),
            "words": r["words"].get(i, ""),
        }
        for i, s, y, t, a in zip(
            r["test_ids"], r["scores"], r["test_labels"], r["text_only_predictions"], av
        )
    ]
    rows.sort(key=lambda row: -row["score"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows[:k] + rows[-k:] if len(rows) > 2 * k else rows


def plot_fig2(analysis: dict[str, Any], path: Path) -> None:
    """Acc-2(text dropped) / Acc-2(all), mean and std over seeds, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in analysis["models"] if analysis["fig2"].get(m)]
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        penalties = list(analysis["fig2"][model])
        width = 0.8 / len(penalties)
        for j, penalty in enumerate(penalties):
            entries = [analysis["fig2"][model][penalty][kept] for kept in KEEP]
            means = [e["mean"] for e in entries]
            stds = [e["std"] for e in entries]
            xs = [i + j * width for i in range(len(KEEP))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=penalty)
            for x, e in zip(xs, entries):
                if e.get("verdict") in ("better", "worse"):
                    ax.text(x, 1.01, "*", ha="center", fontsize=10)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(KEEP))], list(KEEP))
        ax.set_title(f"{model}: text dropped at inference", fontsize=9)
        ax.set_ylabel("Acc-2(corrupted) / Acc-2(all)")
        ax.set_ylim(0.3, 1.08)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _claims_md(analysis: dict[str, Any]) -> list[str]:
    lines = [
        "## Claims",
        "",
        "| claim | overall | per model (Holm-adjusted p over the penalties) |",
    ]
    lines.append("|---|---|---|")
    for claim, text in CLAIMS.items():
        per = analysis["claims"][claim]
        parts = []
        for model, entry in per.items():
            tests = "; ".join(
                f"{p} Δ{t['diff']:+.3f} p={_p(t['p'])} (Holm {_p(t.get('p_holm', math.nan))})"
                for p, t in entry["tests"].items()
            )
            parts.append(f"**{model}: {entry['verdict']}** — {tests}")
        lines.append(
            f"| {claim}: {text} | **{analysis['overall'][claim]}** | "
            + ("<br>".join(parts) or "not run (no model of this claim in the grid)")
            + " |"
        )
    lines += [
        "",
        "Rule: a model's claim is *held* when at least one penalty is better than no penalty at "
        "α = 0.05 (two-sided Wilcoxon signed-rank over seeds, Holm-adjusted over the penalties; "
        "C4: one-sided Wilcoxon of the per-seed AUC against 0.5) and none is worse; *not held* "
        "when one is significantly worse; *not detectable* otherwise. Overall: held when held for "
        "every model run, not held when not held for one, else not detectable.",
        "",
    ]
    if analysis.get("wilcoxon_p_min_note"):
        lines += [analysis["wilcoxon_p_min_note"] + ".", ""]
    return lines


def _tables_md(analysis: dict[str, Any]) -> list[str]:
    head = (
        "| model | penalty | " + " | ".join(t for _, t, _ in TABLE_METRICS) + " | weights chosen |"
    )
    lines = [
        "## Tables 1-2 (test, mean ± std over seeds; Δ to no penalty [95% bootstrap], Wilcoxon p)",
        "",
    ]
    lines += [head, "|---" * (len(TABLE_METRICS) + 3) + "|"]
    for model, rows in analysis["tables"].items():
        for penalty, row in rows.items():
            cells = [_cell(row[m]) for m, _, _ in TABLE_METRICS]
            weights = ", ".join(f"{w}×{n}" for w, n in row.get("chosen_weights", {}).items())
            lines.append(f"| {model} | {penalty} | " + " | ".join(cells) + f" | {weights} |")
    lines += [
        "",
        "Verdicts per cell are unadjusted (α = 0.05): ▲ better, ▼ worse, · no detectable difference.",
        "",
    ]
    return lines


def _fig2_md(analysis: dict[str, Any]) -> list[str]:
    lines = [
        "## Fig. 2: Acc-2 (non0) with text dropped / Acc-2 (all)",
        "",
        "![Fig. 2](fig2_modality_drop.png)",
        "",
    ]
    lines += [
        "| model | penalty | " + " | ".join(f"keep {k}" for k in KEEP) + " |",
        "|---|---|---|---|---|",
    ]
    for model, rows in analysis["fig2"].items():
        for penalty, row in rows.items():
            lines.append(
                f"| {model} | {penalty} | " + " | ".join(_cell(row[k]) for k in KEEP) + " |"
            )
    return [*lines, ""]


def _tab3_md(analysis: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    lines = ["## Tab. 3: test segments ranked by the critic, and C4's check", ""]
    lines += [
        "| model | penalty | AUC (agree > disagree) mean ± std | seeds | p (AUC > 0.5) | runs with Mann–Whitney p < 0.05 |"
    ]
    lines.append("|---|---|---|---|---|---|")
    for model, rows in analysis["c4"].items():
        for penalty, t in rows.items():
            lines.append(
                f"| {model} | {penalty} | {_f(t['auc_mean'])} ± {_f(t['auc_std'])} | {t['n']} | "
                f"{_p(t['p'])} | {t['runs_significant']}/{t['runs']} (median p {_p(t['median_run_p'])}) |"
            )
    lines.append("")
    for model in analysis["models"]:
        for penalty in analysis["penalties"]:
            rows = tab3_rows(records, model, penalty)
            if not rows:
                continue
            lines += [f"### {model}, {penalty} (first seed), top and bottom five", ""]
            lines += [
                "| rank | score | label | text-only | audio+video | agree | words |",
                "|---|---|---|---|---|---|---|",
            ]
            for row in rows:
                lines.append(
                    f"| {row['rank']} | {row['score']:.3f} | {row['label']:+.2f} | {row['text_only']:+.2f} "
                    f"| {row['audio_video']:+.2f} | {'yes' if row['agree'] else 'no'} | {row['words'] or row['id']} |"
                )
            lines.append("")
    return lines


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.5g}") if math.isfinite(value) else value
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def compact_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run for ``runs.json``: numbers to 5 significant digits, the transcripts kept only for
    the first seed (the one Tab. 3 shows; the cache keeps them all)."""
    first = min((r["config"]["seed"] for r in records), default=0)
    out = []
    for r in records:
        r = _rounded(r)
        if r["config"]["seed"] != first:
            r.pop("words", None)
        out.append(r)
    return out


def write_report(
    out: Path, records: list[dict[str, Any]], analysis: dict[str, Any], header: dict[str, Any]
) -> Path:
    """Write report.md, analysis.json, runs.json and the Fig. 2 PNG under ``out``."""
    out = Path(out)
    seconds = [r["seconds"] for r in records]
    lines = [f"# Reproduction report: {header['data']}", ""]
    for key, value in header.items():
        lines.append(f"- {key}: {value}")
    lines.append(
        f"- runs: {len(records)}; seconds per run: mean {np.mean(seconds):.1f}, "
        f"total {np.sum(seconds) / 60:.1f} min (single thread)"
    )
    lines.append("")
    lines += (
        _claims_md(analysis)
        + _tables_md(analysis)
        + _fig2_md(analysis)
        + _tab3_md(analysis, records)
    )
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "analysis.json", json.dumps(analysis, indent=1, default=float))
    atomic_write_text(out / "runs.json", json.dumps(compact_records(records)))
    plot_fig2(analysis, out / "fig2_modality_drop.png")
    return out / "report.md"
