"""Each measure as a drop-in penalty in a plain PyTorch loop, against no penalty, on real views.

The loop is the README's "Use it as a loss", not the Trainer: one small MLP encoder per view,
a linear classifier on the concatenated representations, and

    loss = cross_entropy + measure.loss(z1, z2, z3, weight=λ)

with one Adam optimiser over the model's and the measure's parameters. Each measure is built
with its defaults (``TotalCorrelation(dims)``, ``FTotalCorrelation(dims)``,
``WassersteinDependency(dims)``) unless a variant names options. The representations are the
encoders' linear outputs (unbounded), as in most user models; the input features are
standardised on the training rows, as any user would.

Data (real, three views each):

- ``breast_cancer``: scikit-learn's Wisconsin table, its 30 features as the mean, standard
  error and worst value of 10 measurements (as ``mdmest.fusion.reproduce`` splits it); 2 classes.
- ``digits``: scikit-learn's 8 x 8 handwritten digits, each image cut into three bands of rows
  (0-2, 3-5, 6-7: 24, 24 and 16 pixels); 10 classes.

Per seed: one stratified train/test split (75/25), the same model initialisation and batch order
for every variant; test accuracy after the last epoch. Each variant is compared with no penalty
on the same seeds: mean paired difference (points of accuracy), wins/ties/losses and a two-sided
Wilcoxon signed-rank p (zero differences dropped; 1.0 when every difference is 0).

    python benchmarks/dropin_penalty.py --data breast_cancer,digits --seeds 10 \
        --out docs/results/dropin_penalty

A variant is ``label=measure:key=value;key=value`` (values read as JSON), e.g.
``w_raw=wasserstein:normalize=false``; a bare measure name uses its defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mdmest import make_measure

#: The variants run by default: no penalty and each measure with its defaults.
DEFAULT_VARIANTS = ("none", "dv", "f", "wasserstein")
#: Epochs per data set (about 210 steps of 64 rows on breast cancer, 250 on digits).
EPOCHS = {"breast_cancer": 30, "digits": 12}


def load_views(name: str) -> tuple[list[np.ndarray], np.ndarray]:
    """(views, labels) of a real three-view data set."""
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        table = load_breast_cancer()
        x = table.data.astype(np.float64)
        return [x[:, 0:10], x[:, 10:20], x[:, 20:30]], table.target.astype(np.int64)
    if name == "digits":
        from sklearn.datasets import load_digits

        table = load_digits()
        images = table.images.astype(np.float64)  # (N, 8, 8)
        bands = [images[:, 0:3], images[:, 3:6], images[:, 6:8]]
        return [b.reshape(len(b), -1) for b in bands], table.target.astype(np.int64)
    raise ValueError(f"data must be 'breast_cancer' or 'digits', got {name!r}")


def split(labels: np.ndarray, seed: int, test_fraction: float = 0.25):
    """Stratified (train, test) row indices for this seed."""
    rng = np.random.default_rng([seed, 25])
    train, test = [], []
    for value in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == value))
        cut = round((1 - test_fraction) * len(idx))
        train += idx[:cut].tolist()
        test += idx[cut:].tolist()
    return np.array(sorted(train)), np.array(sorted(test))


def standardised(views, train):
    """Each feature centred and scaled by its training rows (constant features left at 0)."""
    out = []
    for v in views:
        mean, std = v[train].mean(0), v[train].std(0)
        std[std == 0] = 1.0
        out.append(torch.as_tensor((v - mean) / std, dtype=torch.float32))
    return out


class Model(nn.Module):
    """One MLP encoder per view (linear output) and a linear head on their concatenation."""

    def __init__(self, dims, classes: int, hidden: int = 64, rep: int = 16) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, rep)) for d in dims
        )
        self.head = nn.Linear(rep * len(dims), classes)

    def forward(self, views):
        z = [encoder(v) for encoder, v in zip(self.encoders, views)]
        return self.head(torch.cat(z, dim=1)), z


def parse_variant(text: str) -> tuple[str, str | None, dict]:
    """``label=measure:key=value;...`` or a bare measure name -> (label, measure, kwargs)."""
    label, _, spec = text.partition("=") if "=" in text.split(":")[0] else (text, "", text)
    name, _, options = spec.partition(":")
    kwargs = {}
    for item in filter(None, options.split(";")):
        key, _, value = item.partition("=")
        kwargs[key] = json.loads(value)
    return label, (None if name == "none" else name), kwargs


def run_one(data, views, labels, seed, measure_name, kwargs, args) -> dict:
    train, test = split(labels, seed)
    x = standardised(views, train)
    y = torch.as_tensor(labels)
    dims = [v.shape[1] for v in x]
    classes = int(labels.max()) + 1
    torch.manual_seed(seed)
    model = Model(dims, classes, args.hidden, args.rep)
    params = list(model.parameters())
    measure = None
    if measure_name is not None:
        torch.manual_seed(10_000 + seed)
        measure = make_measure(measure_name, [args.rep] * len(dims), **kwargs)
        params += list(measure.parameters())
    optimiser = torch.optim.Adam(params, lr=args.lr)
    order = torch.Generator().manual_seed(20_000 + seed)
    task = nn.CrossEntropyLoss()
    train_t = torch.as_tensor(train)
    start = time.perf_counter()
    last_bound = float("nan")
    for _ in range(args.epochs or EPOCHS[data]):
        perm = train_t[torch.randperm(len(train_t), generator=order)]
        for rows in perm.split(args.batch):
            if len(rows) < 2:
                continue
            logits, z = model([v[rows] for v in x])
            loss = task(logits, y[rows])
            if measure is not None:
                loss = loss + measure.loss(*z, weight=args.weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if measure is not None and measure.last_bound is not None:
                last_bound = float(measure.last_bound)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        logits, z = model([v[test] for v in x])
        accuracy = float((logits.argmax(1) == y[test]).float().mean())
        rep_std = float(torch.cat(z, dim=1).std(0).mean())
    return {
        "data": data,
        "seed": seed,
        "accuracy": accuracy,
        "last_train_bound": last_bound,
        "test_rep_std": rep_std,  # mean per-feature std of the test representations
        "seconds": seconds,
    }


def paired(diffs: np.ndarray) -> dict:
    from scipy.stats import wilcoxon

    nonzero = diffs[diffs != 0]
    p = 1.0 if len(nonzero) == 0 else float(wilcoxon(nonzero).pvalue)
    return {
        "mean_diff_points": float(100 * diffs.mean()),
        "wins": int((diffs > 0).sum()),
        "ties": int((diffs == 0).sum()),
        "losses": int((diffs < 0).sum()),
        "wilcoxon_p": p,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="breast_cancer,digits")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--weight", type=float, default=0.1, help="λ of measure.loss")
    parser.add_argument("--epochs", type=int, default=None, help=f"default: {EPOCHS}")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rep", type=int, default=16, help="features per representation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="folder for records.jsonl and summary.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [parse_variant(v) for v in args.variants.split(",")]
    if variants[0][1] is not None:
        variants.insert(0, ("none", None, {}))
    records, summary = [], []
    settings = {k: getattr(args, k) for k in ("weight", "batch", "lr", "hidden", "rep")}
    for data in args.data.split(","):
        views, labels = load_views(data)
        accuracy = {}
        for label, name, kwargs in variants:
            rows = []
            for seed in range(args.seeds):
                row = run_one(data, views, labels, seed, name, kwargs, args)
                row.update(variant=label, measure=name, kwargs=kwargs, **settings)
                row["epochs"] = args.epochs or EPOCHS[data]
                rows.append(row)
            records += rows
            accuracy[label] = np.array([r["accuracy"] for r in rows])
            entry = {
                "data": data,
                "variant": label,
                "measure": name,
                "kwargs": kwargs,
                "seeds": args.seeds,
                "mean_accuracy": float(accuracy[label].mean()),
                "seconds_per_run": float(np.mean([r["seconds"] for r in rows])),
                "mean_test_rep_std": float(np.mean([r["test_rep_std"] for r in rows])),
                **settings,
                "epochs": args.epochs or EPOCHS[data],
            }
            if label != "none":
                entry.update(paired(accuracy[label] - accuracy["none"]))
            summary.append(entry)
            diff = entry.get("mean_diff_points")
            print(
                f"{data:14s} {label:22s} acc {100 * entry['mean_accuracy']:6.2f}  "
                + (
                    f"diff {diff:+6.2f} pts  W/T/L {entry['wins']}/{entry['ties']}/"
                    f"{entry['losses']}  p {entry['wilcoxon_p']:.3f}  "
                    if diff is not None
                    else " " * 44
                )
                + f"rep std {entry['mean_test_rep_std']:7.2f}  {entry['seconds_per_run']:.1f} s/run",
                flush=True,
            )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, rows in (("records", records), ("summary", summary)):
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
            (out / f"{name}.jsonl").write_text(text)


if __name__ == "__main__":
    main()
