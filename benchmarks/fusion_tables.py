"""Tables 1-2, Fig. 2 and Tab. 3 of the paper, on the data you have.

For each model and penalty (none, DV, f-KL, Wasserstein) and seed: train with the dependency penalty,
select the epoch on the validation split, then on the test split report Acc-7, Acc-2 (both
variants), MAE and Corr (Tables 1-2), the robustness ratios Acc-2(text dropped)/Acc-2(all) keeping
audio, video or both (Fig. 2), and the test segments ranked by the critic (Tab. 3).

    python benchmarks/fusion_tables.py --data synthetic:mosi --models ef_lstm lmf --seeds 0 1 \
        --epochs 8 --out results/fusion_tables

Writes results.json (every run), tables.md (mean ± std over seeds), fig2_modality_drop.png and
tab3_critic_ranking.md under --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from mdmest.experiments import group_records, machine_info, markdown_table, pyplot, save_figure
from mdmest.fusion.data import load_for_training
from mdmest.fusion.models import build_model
from mdmest.fusion.training import PENALTIES, PRESETS, TrainConfig, Trainer, drop_ratios
from mdmest.io import atomic_write_text

# Fig. 2: text is dropped at inference; what is kept.
KEEP = {"audio+video": ("text",), "audio": ("text", "video"), "video": ("text", "audio")}
COLUMNS = ("acc7", "acc2_has0", "acc2_non0", "f1_non0", "mae", "corr")


def run_one(dataset, model_name: str, penalty: str, seed: int, args) -> dict:
    # The model's published settings; the Trainer standardises the views for the Wasserstein
    # penalty when the model's representations are unbounded (FusionModel.bounded_representations).
    config = TrainConfig.for_model(
        model_name,
        args.preset,
        epochs=args.epochs,
        penalty=penalty,
        penalty_weight=args.weight,
        patience=args.patience,
        max_steps_per_epoch=args.max_steps_per_epoch,
        seed=seed,
        progress=False,
    )
    model = build_model(
        model_name, dataset.d_text, dataset.d_audio, dataset.d_video, dataset=args.preset
    )
    start = time.perf_counter()
    trainer = Trainer(model, dataset, config)
    trainer.fit()
    full = trainer.evaluate("test")
    record = {
        "model": model_name,
        "penalty": penalty,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "test": full,
        "drop": {},
    }
    for kept, drop in KEEP.items():
        corrupted = trainer.evaluate("test", drop=drop)
        record["drop"][kept] = {**drop_ratios(corrupted, full), "metrics": corrupted}
    if penalty != "none":
        predictions = trainer.predict("test")
        words = {s.id: s.words for s in dataset["test"].segments}
        ranked = sorted(
            zip(predictions.scores, predictions.ids, predictions.labels, predictions.predictions),
            reverse=True,
        )
        record["ranking"] = [
            {
                "id": i,
                "score": float(s),
                "label": float(y),
                "prediction": float(p),
                "words": " ".join(words.get(i) or [])[:120],
            }
            for s, i, y, p in ranked
        ]
    return record


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def write_tables(records: list[dict], out: Path, command: str) -> None:
    table = []
    for (model, penalty), runs in group_records(
        records, lambda r: (r["model"], r["penalty"])
    ).items():
        cells = [mean_std([r["test"][c] for r in runs]) for c in COLUMNS]
        ratio = mean_std([r["drop"]["audio+video"]["acc2_non0_ratio"] for r in runs])
        table.append([model, penalty, *cells, ratio])
    head = ["model", "penalty", *COLUMNS, "Fig. 2 ratio (keep a+v, non0)"]
    lines = [f"Command: `{command}`", "", markdown_table(head, table), ""]
    lines.append(f"Seeds per cell: {sorted({r['seed'] for r in records})}.")
    atomic_write_text(out / "tables.md", "\n".join(lines) + "\n")

    ranking_lines = ["Test segments ranked by the DV critic (first seed), top and bottom five.", ""]
    for r in records:
        if r["penalty"] != "dv" or "ranking" not in r or r["seed"] != records[0]["seed"]:
            continue
        ranked = r["ranking"]
        shown = [
            [rank, f"{row['score']:.3f}", f"{row['label']:+.2f}", f"{row['prediction']:+.2f}",
             row["id"], row["words"]]
            for rank, row in [*enumerate(ranked[:5], 1), *enumerate(ranked[-5:], len(ranked) - 4)]
        ]  # fmt: skip
        head = ["rank", "score", "label", "prediction", "id", "words"]
        ranking_lines += [f"### {r['model']}", "", markdown_table(head, shown), ""]
    atomic_write_text(out / "tab3_critic_ranking.md", "\n".join(ranking_lines) + "\n")


def plot_fig2(records: list[dict], out: Path) -> None:
    """Fig. 2: Acc-2 with text dropped over Acc-2 with every modality, per model and penalty."""
    plt = pyplot()
    models = list(dict.fromkeys(r["model"] for r in records))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        penalties = [
            p for p in PENALTIES if any(r["model"] == model and r["penalty"] == p for r in records)
        ]
        width = 0.8 / len(penalties)
        for j, penalty in enumerate(penalties):
            runs = [r for r in records if r["model"] == model and r["penalty"] == penalty]
            means = [
                statistics.mean(r["drop"][kept]["acc2_non0_ratio"] for r in runs) for kept in KEEP
            ]
            ax.bar([i + j * width for i in range(len(KEEP))], means, width, label=penalty)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(KEEP))], list(KEEP))
        ax.set_title(f"{model}: text dropped at inference")
        ax.set_ylabel("Acc-2(corrupted) / Acc-2(all)")
        ax.set_ylim(0.4, 1.05)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "fig2_modality_drop.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic:mosi")
    parser.add_argument("--models", nargs="+", default=["ef_lstm", "lmf", "mfn", "tfn"])
    parser.add_argument("--penalties", nargs="+", default=list(PENALTIES), choices=PENALTIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--weight", type=float, default=0.1)
    parser.add_argument("--max-steps-per-epoch", type=int, default=None)
    parser.add_argument(
        "--preset", default=None, choices=PRESETS, help="default: the data set's own, else mosi"
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--data-option", nargs="*", default=[], help="KEY=VALUE for synthetic data")
    parser.add_argument("--out", type=Path, default=Path("results/fusion_tables"))
    args = parser.parse_args(argv)
    options = {}
    for item in args.data_option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    dataset = load_for_training(
        args.data, split_seed=args.split_seed, options=options, text_features=True
    )
    args.preset = args.preset or dataset.preset or "mosi"
    command = "python benchmarks/fusion_tables.py " + " ".join(argv or sys.argv[1:])
    records: list[dict] = []
    runs = [(m, p, s) for m in args.models for p in args.penalties for s in args.seeds]
    for model_name, penalty, seed in tqdm(runs, desc="train + evaluate"):
        records.append(run_one(dataset, model_name, penalty, seed, args))
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"command": command, "machine": machine_info(), "runs": records}
        atomic_write_text(args.out / "results.json", json.dumps(report, indent=1))
        write_tables(records, args.out, command)
    plot_fig2(records, args.out)
    print((args.out / "tables.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
