"""The Trainer under ``torchrun``: who this process is, the global batches it trains on, the
predictions of a split gathered from every rank, the seeds of an epoch, the model's DDP wrapping
and the data-parallel training step.

Every helper is the identity (or a no-op) without a process group of more than one rank, so the
single-process path of :class:`~mdmest.fusion.training.Trainer` runs exactly as before; the
exception is :func:`distributed_loss`, which the trainer calls only under a process group.

The data are sharded *within each global batch*: the global batches of an epoch are those one
process draws (:func:`~mdmest.fusion.data.make_loader` seeded ``seed + epoch``, ``batch_size``
rows each), and rank ``r`` takes the ``r``-th of ``W`` near-equal contiguous parts of each. This is the
job of a ``DistributedSampler`` (``set_epoch`` each epoch, the same seeds as one process), done per
batch rather than per epoch so that ``config.batch_size`` stays the global batch, the number of
steps per epoch is that of one process, and, with the measure's cross-rank product rows and the
task loss weighted by the rows each rank holds, every step's loss and gradient are those of one
process on the same batch (up to dropout masks and the per-rank statistics of batch norm).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

from mdmest.distributed import all_reduce_mean_grads, is_distributed

__all__ = [
    "count_steps",
    "GlobalBatchSampler",
    "all_reduce_mean_grads",
    "broadcast_from_rank0",
    "distributed_loss",
    "epoch_seed",
    "gather_objects",
    "is_main",
    "rank",
    "seed_epoch",
    "shard_indices",
    "train_device",
    "train_loader",
    "world_size",
    "wrap_model",
]


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Whether this process logs and writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's part of each global batch of one process's shuffled order.

    The global batches are those of :func:`mdmest.fusion.data.make_loader` with
    ``shuffle=True`` and seed ``seed + epoch``; :meth:`set_epoch` picks the epoch. A global batch with fewer rows than ranks (a short last batch) is skipped by every rank.
    """

    def __init__(self, rows: int, batch_size: int, seed: int, *, world: int, rank: int) -> None:
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.world, self.rank = world, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        # The batches of make_loader's DataLoader over the indices themselves: the same draws
        # (its iterator takes a base seed from the generator before the sampler's permutation).
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = DataLoader(
            range(self.rows), batch_size=self.batch_size, shuffle=True, generator=generator
        )
        for batch in batches:
            if batch.numel() >= self.world:
                yield batch.tensor_split(self.world)[self.rank].tolist()

    def __len__(self) -> int:
        full, last = divmod(self.rows, self.batch_size)
        return full + (1 if last >= self.world else 0)


def epoch_seed(seed: int, epoch: int, rank: int, stream: int = 0) -> int:
    """A seed for ``(seed, epoch, rank, stream)``. Under a process group, torch's global generator
    of each rank is reseeded with stream 0 at the start of every epoch (dropout differs across
    ranks), the measure's product rows of the epoch come from a generator seeded with stream 1 of
    rank 0 on every rank, and the held-out bound from stream 2: a run resumed from ``last.pt`` (an
    epoch boundary) replays the next epoch exactly, on any number of ranks of the same count."""
    entropy = [seed % 2**32, epoch, rank, stream]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


@torch.no_grad()
def broadcast_from_rank0(tensors: Sequence[torch.Tensor]) -> None:
    """Copy rank 0's values of ``tensors`` (parameters, buffers) to every rank, in place."""
    if not is_distributed():
        return
    for tensor in tensors:
        dist.broadcast(tensor.data, 0)


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not is_distributed():
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shard_indices(rows: int) -> list[int]:
    """This rank's contiguous part of ``range(rows)`` (the whole range without a process group)."""
    world = world_size()
    if world == 1:
        return list(range(rows))
    size, extra = divmod(rows, world)
    start = rank() * size + min(rank(), extra)
    return list(range(start, start + size + (1 if rank() < extra else 0)))


# ---------------------------------------------------------------------- the Trainer's set-up
def train_device(device: torch.device) -> torch.device:
    """The device this rank trains on: under a process group on CUDA, ``cuda:LOCAL_RANK`` (made the
    current device: NCCL's object collectives use it); otherwise ``device`` itself."""
    if world_size() > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank())))
        torch.cuda.set_device(device)
    return device


def wrap_model(
    model: nn.Module,
    params: Sequence[torch.nn.Parameter],
    measure: nn.Module | None,
    split: Sequence,
    device: torch.device,
) -> nn.Module | None:
    """``model`` in DDP under a process group (``None`` without one), the measure's parameters and
    buffers first copied from rank 0.

    DDP averages the model's gradients in a process group of its own (apart from the measure's
    gathers); the critic's are averaged by :func:`all_reduce_mean_grads` after backward.
    ``params`` are the model's trainable parameters and ``split`` the training split, on which
    :func:`_has_unused_parameters` decides whether DDP must look for unused parameters.
    """
    if world_size() == 1:
        return None
    from torch.nn.parallel import DistributedDataParallel

    if measure is not None:
        broadcast_from_rank0(list(measure.parameters()) + list(measure.buffers()))
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=_has_unused_parameters(model, params, split, device),
        process_group=dist.new_group(),
    )


def _has_unused_parameters(
    model: nn.Module, params: Sequence[torch.nn.Parameter], split: Sequence, device: torch.device
) -> bool:
    """Whether a forward pass leaves some of ``params`` without gradient (DDP must then look for
    them every step): one pass in eval mode on two segments of ``split``, the random state and the
    model's buffers untouched."""
    from mdmest.fusion.data import collate
    from mdmest.fusion.data.batching import to_device

    batch = to_device(collate([split[i] for i in range(min(2, len(split)))]), device)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            output = model(batch)
            total = output.prediction.sum() + sum(z.sum() for z in output.representations)
            grads = torch.autograd.grad(total, params, allow_unused=True)
    finally:
        model.train(was_training)
    return any(g is None for g in grads)


# ---------------------------------------------------------------------- the Trainer's epochs
def seed_epoch(seed: int, epoch: int, measure: nn.Module | None, device: torch.device) -> None:
    """Under a process group, at the start of ``epoch``: this rank's torch generator from (seed,
    epoch, rank), the measure's product rows from one generator seeded alike on every rank (see
    :func:`epoch_seed`)."""
    torch.manual_seed(epoch_seed(seed, epoch, rank()))
    if measure is not None and hasattr(measure, "generator"):
        measure.generator = torch.Generator(device=device).manual_seed(
            epoch_seed(seed, epoch, 0, stream=1)
        )


def train_loader(split: Sequence, batch_size: int, seed: int, epoch: int) -> Any:
    """The training batches of ``epoch``: those of one process
    (:func:`~mdmest.fusion.data.make_loader` shuffled with seed ``seed + epoch``) or, under a
    process group, this rank's part of each of them (:class:`GlobalBatchSampler`)."""
    from mdmest.fusion.data import collate, make_loader

    world = world_size()
    if world == 1:
        return make_loader(split, batch_size, shuffle=True, seed=seed + epoch)
    sampler = GlobalBatchSampler(len(split), batch_size, seed, world=world, rank=rank())
    sampler.set_epoch(epoch)
    return DataLoader(split, batch_sampler=sampler, collate_fn=collate)


def distributed_loss(
    ddp: nn.Module,
    batch: dict,
    *,
    task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    measure: nn.Module | None,
    penalty_weight: float,
    step: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss to back-propagate on this rank's part of a global batch (already on its device),
    and the global batch's ``train_loss``, ``task_loss`` and ``penalty``, identical on every rank.

    The task loss is weighted by this rank's share of the rows (``W · B_r / B``) so that DDP's
    average over ranks is the gradient of the global batch's mean; the measure returns the global
    batch's loss on every rank with the same convention (mdmest.distributed). ``step`` (the step's
    number) goes into the error raised, on every rank together, on a non-finite loss.
    """
    output = ddp(batch)
    labels = batch["label"]
    task_local = task_loss(output.prediction, labels)
    rows = torch.tensor(
        [float(labels.shape[0]), float(task_local.detach()) * labels.shape[0]],
        dtype=torch.float64,
        device=labels.device,
    )
    dist.all_reduce(rows)
    global_rows, task_value = float(rows[0]), float(rows[1] / rows[0])
    loss = task_local * (world_size() * labels.shape[0] / global_rows)
    penalty_value = 0.0
    if measure is not None:
        loss = loss + measure.loss(*output.representations, weight=penalty_weight)
        penalty_value = measure.last_loss.item()
    total = task_value + penalty_weight * penalty_value
    if not math.isfinite(total):  # the same on every rank: all raise together
        raise FloatingPointError(
            f"non-finite loss at step {step} (task {task_value}, penalty {penalty_value}); lower "
            "the learning rate or the penalty weight"
        )
    return loss, {"train_loss": total, "task_loss": task_value, "penalty": penalty_value}


def count_steps(rows: int, batch_size: int, max_steps: int | None) -> int:
    """Training steps per epoch: the global batches of ``rows`` rows (under a process group a last
    batch with fewer rows than ranks is skipped), at most ``max_steps``."""
    batches = math.ceil(rows / batch_size)
    if world_size() > 1:
        full, last = divmod(rows, batch_size)
        batches = full + (1 if last >= world_size() else 0)
    return batches if max_steps is None else min(batches, max_steps)
