"""Evaluation of a fusion model: predictions on a split, the measure's bound on them, modality
drop, metric comparison, CSV.

Examples
--------
>>> drop_ratios({"acc2_has0": 0.6, "acc2_non0": 0.5}, {"acc2_has0": 0.8, "acc2_non0": 1.0})
{'acc2_has0_ratio': 0.7499999999999999, 'acc2_non0_ratio': 0.5}
>>> is_better(0.5, 0.7, "mae"), is_better(0.5, 0.7, "corr"), is_better(float("nan"), None, "mae")
(True, False, False)
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mdmest._validation import check_choice
from mdmest.fusion.base import MODALITIES, FusionModel
from mdmest.fusion.data.batching import to_device
from mdmest.io import atomic_write_text

__all__ = [
    "LOWER_IS_BETTER",
    "Predictions",
    "bound_estimate",
    "drop_modalities",
    "drop_ratios",
    "is_better",
    "predict",
    "to_device",
    "write_scores_csv",
]

#: Validation metrics where lower is better; every other metric of regression_metrics is maximised.
LOWER_IS_BETTER = frozenset({"mae"})


@dataclass
class Predictions:
    """A model's outputs on one split, one entry per segment, in loader order.

    ``scores`` holds the critic's value on each segment's joint row (paper Sec. 5.4: high means the
    modalities agree, low that they contradict); it is ``None`` for a model trained without penalty.
    ``representations`` are (z_text, z_audio, z_video), each of shape (N, d_k).
    """

    ids: list[str]
    labels: np.ndarray
    predictions: np.ndarray
    scores: np.ndarray | None
    representations: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def metrics(self) -> dict[str, float]:
        """All regression metrics of :func:`mdmest.fusion.metrics.regression_metrics`."""
        from mdmest.fusion.metrics import regression_metrics

        values = regression_metrics(self.predictions, self.labels)
        return {name: float(value) for name, value in values.items()}


def is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether ``value`` of validation ``metric`` beats ``best`` (``None``: nothing yet; NaN never
    wins); "mae" is minimised, every other metric maximised."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def drop_modalities(batch: dict, drop: Iterable[str]) -> dict:
    """Return a copy of ``batch`` in which each dropped modality carries no information.

    Feature tensors (``"text"``, ``"audio"``, ``"video"``) are replaced by zeros of the same shape;
    the lengths are kept, so the model sees sequences of the usual length with empty content.
    ``batch["drop"]`` names the dropped modalities for models that read words instead of features
    (MAG-BERT and MAG-XLNet replace the dropped text's word pieces by the padding token).

    Parameters
    ----------
    batch : dict
        A batch from :func:`mdmest.fusion.data.collate`.
    drop : iterable of {"text", "audio", "video"}
        Modalities to remove.
    """
    drop = tuple(drop)
    for modality in drop:
        check_choice("modality", modality, MODALITIES)
    dropped = {**batch, "drop": drop}
    for modality in drop:
        if modality in batch:
            dropped[modality] = torch.zeros_like(batch[modality])
        elif not (modality == "text" and batch.get("words") is not None):
            raise ValueError(f"cannot drop {modality!r}: the batch has no {modality!r} features")
    return dropped


def drop_ratios(corrupted: dict[str, float], full: dict[str, float]) -> dict[str, float]:
    """Fig. 2's robustness ratios ``Acc-2(corrupted) / Acc-2(all)``, for both Acc-2 variants."""
    return {
        f"{name}_ratio": corrupted[name] / full[name] if full[name] > 0 else float("nan")
        for name in ("acc2_has0", "acc2_non0")
    }


@torch.no_grad()
def predict(
    model: FusionModel,
    split: Sequence,
    *,
    batch_size: int,
    device: torch.device,
    measure: nn.Module | None = None,
    drop: Sequence[str] = (),
    name: str = "split",
) -> Predictions:
    """Predictions, labels and critic scores of ``model`` on every segment of ``split``.

    Parameters
    ----------
    model : FusionModel
        Put in evaluation mode.
    split : dataset split
        What :func:`mdmest.fusion.data.make_loader` reads, e.g. ``dataset["test"]``.
    batch_size : int
        Segments per forward pass.
    device : torch.device
        Where ``model`` (and ``measure``) live.
    measure : mdmest measure, optional
        Scores each segment's joint row; ``None`` gives ``scores=None``.
    drop : sequence of {"text", "audio", "video"}
        Modalities removed at inference (see :func:`drop_modalities`).
    name : str
        The split's name, for the error on an empty split.
    """
    from mdmest.fusion.data import make_loader
    from mdmest.fusion.training import distributed as ranks

    model.eval()
    ids: list[str] = []
    labels, predictions = [], []
    representations: list[list[torch.Tensor]] = [[], [], []]
    sharded = ranks.world_size() > 1
    if sharded:  # under a process group each rank predicts its contiguous part of the split
        split = torch.utils.data.Subset(split, ranks.shard_indices(len(split)))
    for batch in make_loader(split, batch_size, shuffle=False):
        batch = to_device(drop_modalities(batch, drop) if drop else batch, device)
        output = model(batch)
        ids.extend(str(segment) for segment in batch["id"])
        labels.append(batch["label"].cpu())
        predictions.append(output.prediction.cpu())
        for store, z in zip(representations, output.representations):
            store.append(z.cpu() if sharded else z)
    if sharded:  # every rank gets the whole split, in the order of one process
        parts = ranks.gather_objects((ids, labels, predictions, representations))
        ids = [i for part in parts for i in part[0]]
        labels = [x for part in parts for x in part[1]]
        predictions = [x for part in parts for x in part[2]]
        representations = [[z.to(device) for part in parts for z in part[3][k]] for k in range(3)]
    if not ids:
        raise ValueError(f"split {name!r} is empty")
    views = (
        torch.cat(representations[0]),
        torch.cat(representations[1]),
        torch.cat(representations[2]),
    )
    # One call on the whole split: a per-view normalisation then sees every segment.
    scores = measure.scores(*views).cpu().numpy() if measure is not None else None
    return Predictions(
        ids=ids,
        labels=torch.cat(labels).numpy(),
        predictions=torch.cat(predictions).numpy(),
        scores=scores,
        representations=views,
    )


def bound_estimate(
    measure: nn.Module | None,
    predictions: Predictions,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
) -> float:
    """The measure's bound on the representations of ``predictions`` (NaN without a measure).

    Streamed (:class:`mdmest.streaming.StreamingBound`) over batches of about ``batch_size`` rows,
    the size the critic trains on: product rows are drawn within each batch and the bound is that
    of all rows together (the DV log-mean-exp over every product row, not a mean of per-batch
    bounds), so memory stays bounded by one batch and, under a process group, the statistics
    reduce over ranks; there every rank's batches draw from a stream of their own, seeded from
    ``(seed, epoch, rank)``. A measure without a streaming form (e.g. a decomposition) gets one
    ``estimate`` over all rows.
    """
    from mdmest.fusion.training import distributed as ranks

    if measure is None:
        return float("nan")
    views = predictions.representations
    streaming = getattr(measure, "streaming", None)
    if streaming is None:
        return _estimate_all(measure, views)
    world = ranks.world_size()
    try:
        if world > 1:  # every rank's batches draw from a stream of their own
            bound = streaming(generator=ranks.epoch_seed(seed, epoch, ranks.rank(), stream=2))
        else:
            bound = streaming()
    except TypeError:  # a measure whose bound does not accumulate
        return _estimate_all(measure, views)
    # Near-equal batches of at least batch_size (>= 2) rows each: no short last batch. Under a
    # process group every rank holds all rows (predict gathers them) and folds in every W-th
    # batch; compute() reduces the statistics over the ranks.
    batches = max(1, views[0].shape[0] // max(2, batch_size))
    for index, batch in enumerate(zip(*(z.tensor_split(batches) for z in views))):
        if index % world == ranks.rank():
            bound.update(*batch)
    return float(bound.compute())


def _estimate_all(measure: nn.Module, views: Sequence[torch.Tensor]) -> float:
    """One ``estimate`` over all rows; a measure that gathers across ranks gets this rank's
    contiguous part of them (so that the gathered rows are all rows, once)."""
    from mdmest.distributed import CrossRankSampler
    from mdmest.fusion.training import distributed as ranks

    world = ranks.world_size()
    if world > 1 and isinstance(getattr(measure, "sampler", None), CrossRankSampler):
        views = [z.tensor_split(world)[ranks.rank()] for z in views]
    return float(measure.estimate(*views))


def write_scores_csv(predictions: Predictions, path: str | os.PathLike) -> None:
    """Write ``id, label, prediction, critic_score`` per segment, highest critic score first.

    The ranking is paper Sec. 5.4's explanation: the top rows are segments whose modalities the
    critic finds consistent, the bottom rows segments whose modalities contradict each other.
    """
    if predictions.scores is None:
        raise ValueError("no critic scores: the model was trained without a dependency penalty")
    order = np.argsort(-predictions.scores, kind="stable")

    stream = io.StringIO(newline="")
    writer = csv.writer(stream)
    writer.writerow(["id", "label", "prediction", "critic_score"])
    for index in order:
        writer.writerow(
            [
                predictions.ids[index],
                f"{predictions.labels[index]:.4f}",
                f"{predictions.predictions[index]:.4f}",
                f"{predictions.scores[index]:.6g}",
            ]
        )
    atomic_write_text(path, stream.getvalue())
