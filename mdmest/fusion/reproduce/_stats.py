"""Paired statistics over seeds: mean ± std, bootstrap interval, Wilcoxon, Mann–Whitney, verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "ALPHA",
    "PairedResult",
    "agreement_test",
    "bootstrap_ci",
    "holm",
    "mean_std",
    "paired_test",
    "verdict",
    "wilcoxon_p",
]

ALPHA = 0.05
BETTER, WORSE, NONE = "better", "worse", "no detectable difference"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value), ignoring NaN."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def bootstrap_ci(
    differences: Sequence[float], *, confidence: float = 0.95, resamples: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    d = np.asarray(differences, dtype=float)
    if d.size < 2 or np.all(d == d[0]):
        return float(d.mean()) if d.size else math.nan, float(d.mean()) if d.size else math.nan
    result = bootstrap(
        (d,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``differences`` (1.0 when all are zero)."""
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=float)
    if d.size == 0 or np.all(d == 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


@dataclass
class PairedResult:
    """A penalty's metric against no penalty, paired by seed (and fold)."""

    n: int
    mean: float
    std: float
    baseline_mean: float
    baseline_std: float
    diff: float
    ci_low: float
    ci_high: float
    p: float
    higher_is_better: bool

    @property
    def verdict(self) -> str:
        return verdict(self.diff, self.p, self.higher_is_better)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def paired_test(
    treated: Sequence[float], baseline: Sequence[float], *, higher_is_better: bool = True
) -> PairedResult:
    """Mean ± std of both, the mean paired difference ``treated - baseline`` with its 95% bootstrap
    interval, and the Wilcoxon signed-rank p-value. Pairs with a NaN on either side are left out."""
    a, b = np.asarray(treated, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in size: {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    low, high = bootstrap_ci(d) if d.size else (math.nan, math.nan)
    m, s = mean_std(a.tolist())
    bm, bs = mean_std(b.tolist())
    return PairedResult(
        n=int(d.size),
        mean=m,
        std=s,
        baseline_mean=bm,
        baseline_std=bs,
        diff=float(d.mean()) if d.size else math.nan,
        ci_low=low,
        ci_high=high,
        p=wilcoxon_p(d) if d.size else math.nan,
        higher_is_better=higher_is_better,
    )


def verdict(diff: float, p: float, higher_is_better: bool = True, alpha: float = ALPHA) -> str:
    """The verdict: better or worse when ``p < alpha`` (direction from ``diff``), else no
    detectable difference."""
    if math.isnan(p) or math.isnan(diff) or p >= alpha or diff == 0:
        return NONE
    return BETTER if (diff > 0) == higher_is_better else WORSE


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def agreement_test(scores: Sequence[float], agree: Sequence[bool]) -> dict[str, float]:
    """Do segments whose unimodal predictions agree get higher critic scores? One-sided
    Mann–Whitney U (agree > disagree); ``auc`` = U / (n_agree · n_disagree), 0.5 = no relation."""
    from scipy.stats import mannwhitneyu

    s = np.asarray(scores, dtype=float)
    a = np.asarray(agree, dtype=bool)
    x, y = s[a], s[~a]
    if x.size == 0 or y.size == 0:
        return {"n_agree": int(x.size), "n_disagree": int(y.size), "auc": math.nan, "p": math.nan}
    result = mannwhitneyu(x, y, alternative="greater")
    return {
        "n_agree": int(x.size),
        "n_disagree": int(y.size),
        "auc": float(result.statistic) / (x.size * y.size),
        "p": float(result.pvalue),
    }
