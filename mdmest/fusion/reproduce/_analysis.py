"""From run records to the paper's comparisons: weight and epoch chosen on validation, per-seed
units (folds pooled), paired tests against no penalty, and the verdict on each claim C1-C4.

A *unit* is one (model, penalty, seed): for each fold, the penalty weight with the best validation
metric is kept (the epoch was already chosen on validation by the trainer); the test predictions of
the kept runs of all folds are pooled, so with cross-validation every segment is tested once per
seed. Penalty and no penalty are paired by seed: the same data split, folds and initialisation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from mdmest.fusion.metrics import regression_metrics
from mdmest.fusion.reproduce._config import KEEP, TABLE_METRICS
from mdmest.fusion.reproduce._stats import (
    ALPHA,
    BETTER,
    NONE,
    WORSE,
    agreement_test,
    holm,
    paired_test,
)
from mdmest.fusion.training import LOWER_IS_BETTER

__all__ = ["CLAIM_MODELS", "analyse", "select_runs", "units"]

#: Which models each claim is about ("mlp" stands in for EF-LSTM on tabular views).
CLAIM_MODELS = {
    "C1": ("ef_lstm", "mlp", "mlp_linear"),
    "C2": ("mfn", "lmf", "mag_bert", "mag_xlnet"),
}
HELD, NOT_HELD, NOT_DETECTABLE = "held", "not held", "not detectable"


def select_runs(records: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(model, penalty, seed, fold) → the run whose weight has the best validation metric."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in records:
        c = r["config"]
        key = (c["model"], c["penalty"], c["seed"], c["fold"])
        metric = c["select_on"]
        value = r["valid"][metric] if r.get("valid") else math.nan
        sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
        score = sign * value if not math.isnan(value) else math.inf
        if key not in best or score < best[key][0]:
            best[key] = (score, r)
    return {key: r for key, (_, r) in best.items()}


def _agree(r: dict[str, Any]) -> np.ndarray:
    text = np.sign(np.asarray(r["text_only_predictions"]))
    av = np.sign(np.asarray(r["drop"]["audio+video"]["predictions"]))
    return text == av


def units(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """(model, penalty) → seed → the unit's test metrics (folds pooled), Fig. 2 ratios, chosen
    weights and the critic's agreement test."""
    chosen = select_runs(records)
    grouped: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for (model, penalty, seed, _fold), r in sorted(chosen.items(), key=lambda kv: kv[0][3]):
        grouped[(model, penalty)][seed].append(r)
    out: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for key, seeds in grouped.items():
        out[key] = {}
        for seed, runs in seeds.items():
            labels = np.concatenate([r["test_labels"] for r in runs])
            preds = np.concatenate([r["test_predictions"] for r in runs])
            metrics = regression_metrics(preds, labels)
            unit: dict[str, Any] = {
                "metrics": {k: float(v) for k, v in metrics.items()},
                "weights": [r["config"]["weight"] for r in runs],
                "folds": len(runs),
                "ratios": {},
            }
            for kept in KEEP:
                dropped = np.concatenate([r["drop"][kept]["predictions"] for r in runs])
                acc = regression_metrics(dropped, labels)["acc2_non0"]
                full = metrics["acc2_non0"]
                unit["ratios"][kept] = acc / full if full > 0 else math.nan
            if runs[0].get("scores") is not None:
                tests = [agreement_test(r["scores"], _agree(r)) for r in runs]
                aucs = [t["auc"] for t in tests if not math.isnan(t["auc"])]
                unit["agreement"] = {
                    "auc": float(np.mean(aucs)) if aucs else math.nan,
                    "runs": tests,
                }
            out[key][seed] = unit
    return out


def _paired(u, model, penalty, value, higher=True):
    base, treated = u.get((model, "none"), {}), u.get((model, penalty), {})
    seeds = sorted(set(base) & set(treated))
    a = [value(treated[s]) for s in seeds]
    b = [value(base[s]) for s in seeds]
    return paired_test(a, b, higher_is_better=higher).to_dict() | {"seeds": seeds}


def _claim_from(verdicts: list[str]) -> str:
    if BETTER in verdicts and WORSE not in verdicts:
        return HELD
    if WORSE in verdicts:
        return NOT_HELD
    return NOT_DETECTABLE


def _adjusted(results: dict[str, dict], key: str = "p") -> dict[str, str]:
    """Holm over the penalties of one model; verdict per penalty at the adjusted p."""
    names = list(results)
    adjusted = holm([results[n][key] if not math.isnan(results[n][key]) else 1.0 for n in names])
    out = {}
    for name, p in zip(names, adjusted):
        results[name]["p_holm"] = p
        d, hib = results[name]["diff"], results[name]["higher_is_better"]
        out[name] = NONE if p >= ALPHA or d == 0 else (BETTER if (d > 0) == hib else WORSE)
        results[name]["verdict_holm"] = out[name]
    return out


def _overall(per_model: dict[str, str]) -> str:
    values = list(per_model.values())
    if not values:
        return "not run"
    if all(v == HELD for v in values):
        return HELD
    if any(v == NOT_HELD for v in values):
        return NOT_HELD
    return NOT_DETECTABLE


def analyse(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Tables 1-2 (every metric, every penalty against none), Fig. 2's ratios, C4's agreement
    tests and the verdict on each claim, as one JSON-ready dict."""
    u = units(records)
    models = list(dict.fromkeys(m for m, _ in u))
    penalties = [p for p in ("dv", "f", "wasserstein") if any(p == q for _, q in u)]
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    fig2: dict[str, dict[str, dict[str, Any]]] = {}
    c4: dict[str, dict[str, Any]] = {}
    claims: dict[str, dict[str, Any]] = {"C1": {}, "C2": {}, "C3": {}, "C4": {}}
    for model in models:
        tables[model] = {}
        for penalty in ["none", *penalties]:
            if (model, penalty) not in u:
                continue
            row = {}
            for metric, _, higher in TABLE_METRICS:
                if penalty == "none":
                    vals = [s["metrics"][metric] for s in u[(model, "none")].values()]
                    row[metric] = {
                        "mean": float(np.nanmean(vals)),
                        "std": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0,
                        "n": len(vals),
                    }
                else:
                    row[metric] = _paired(
                        u, model, penalty, lambda s, m=metric: s["metrics"][m], higher
                    )
            if penalty != "none":
                weights = [w for s in u[(model, penalty)].values() for w in s["weights"]]
                row["chosen_weights"] = {str(w): weights.count(w) for w in sorted(set(weights))}
            tables[model][penalty] = row
        # C1 / C2: Acc-2 (non0), Holm over the penalties.
        primary = {p: dict(tables[model][p]["acc2_non0"]) for p in penalties if p in tables[model]}
        verdicts = _adjusted(primary) if primary and (model, "none") in u else {}
        for claim, claim_models in CLAIM_MODELS.items():
            if model in claim_models and verdicts:
                claims[claim][model] = {
                    "verdict": _claim_from(list(verdicts.values())),
                    "tests": primary,
                }
        # C3: Fig. 2 ratio keeping audio+video (the paper's headline), other keeps reported.
        fig2[model] = {}
        for penalty in ["none", *penalties]:
            if (model, penalty) not in u:
                continue
            fig2[model][penalty] = {}
            for kept in KEEP:
                if penalty == "none":
                    vals = [s["ratios"][kept] for s in u[(model, "none")].values()]
                    fig2[model][penalty][kept] = {
                        "mean": float(np.nanmean(vals)),
                        "std": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0,
                    }
                else:
                    fig2[model][penalty][kept] = _paired(
                        u, model, penalty, lambda s, k=kept: s["ratios"][k]
                    )
        robust = {p: dict(fig2[model][p]["audio+video"]) for p in penalties if p in fig2[model]}
        if robust and (model, "none") in u:
            claims["C3"][model] = {
                "verdict": _claim_from(list(_adjusted(robust).values())),
                "tests": robust,
            }
        # C4: AUC of "critic score higher when the unimodal predictions agree", against 0.5.
        c4[model] = {}
        for penalty in penalties:
            seeds = u.get((model, penalty), {})
            aucs = [s["agreement"]["auc"] for s in seeds.values() if "agreement" in s]
            aucs = [a for a in aucs if not math.isnan(a)]
            if not aucs:
                continue
            from scipy.stats import wilcoxon

            d = np.asarray(aucs) - 0.5
            p = float(wilcoxon(d, alternative="greater").pvalue) if np.any(d != 0) else 1.0
            run_ps = [
                t["p"]
                for s in seeds.values()
                for t in s["agreement"]["runs"]
                if not math.isnan(t["p"])
            ]
            c4[model][penalty] = {
                "auc_mean": float(np.mean(aucs)),
                "auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
                "n": len(aucs),
                "p": p,
                "diff": float(d.mean()),
                "higher_is_better": True,
                "runs_significant": sum(q < ALPHA for q in run_ps),
                "runs": len(run_ps),
                "median_run_p": float(np.median(run_ps)) if run_ps else math.nan,
            }
        if c4[model]:
            verdicts4 = _adjusted(c4[model])
            # A critic that scores agreeing segments *lower* is evidence against C4 as well.
            claims["C4"][model] = {
                "verdict": _claim_from(list(verdicts4.values())),
                "tests": c4[model],
            }
    overall = {
        claim: _overall({m: v["verdict"] for m, v in per.items()}) for claim, per in claims.items()
    }
    return {
        "models": models,
        "penalties": penalties,
        "tables": tables,
        "fig2": fig2,
        "c4": c4,
        "claims": claims,
        "overall": overall,
        "units": {f"{m}/{p}": {str(s): v for s, v in seeds.items()} for (m, p), seeds in u.items()},
        "wilcoxon_p_min_note": _min_p_note(u),
    }


def _min_p_note(u) -> str:
    n = max((len(seeds) for seeds in u.values()), default=0)
    if n == 0:
        return ""
    smallest = 2.0 / 2**n
    return (
        f"{n} paired seeds: the smallest two-sided Wilcoxon p-value possible is {smallest:.4f}"
        + (" — too few to reach α = 0.05" if smallest >= ALPHA else "")
    )
