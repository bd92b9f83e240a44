"""What the cross-rank product of marginals costs: time per training step with one process and with
2 CPU processes (gloo) at the same global batch, bytes moved per step and the memory of the gathered
views (both computed from the shapes).

The communication is also timed alone (row counts, the gathers of views and scores and their
backward passes, at the step's shapes). A step is forward, backward, the average of the critic's gradients over ranks (what DDP does; not
needed with one process) and an Adam step, for ``TotalCorrelation(dims, distributed=True)``. Each
process runs one thread, so 2 processes use 2 cores against 1: on an idle machine the ideal is half
the single-process time plus the communication.

    python benchmarks/distributed_cost.py --global-batch 256 --dims 64 64 64 --steps 200
    python benchmarks/distributed_cost.py --global-batch 1024 --dims 64 64 64 --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mdmest import TotalCorrelation
from mdmest.critics import MLPCritic
from mdmest.distributed import batch_sizes, gather_rows


def _step_fn(measure: TotalCorrelation, views, world: int):
    params = list(measure.parameters())
    optimizer = torch.optim.Adam(params, 1e-4)

    def step():
        optimizer.zero_grad()
        measure(*views).backward()
        if world > 1:  # DDP's average of the critic's gradients over ranks
            flat = torch.cat([p.grad.flatten() for p in params])
            dist.all_reduce(flat)
            flat /= world
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad.copy_(g.view_as(p))
        optimizer.step()

    return step


def _time(step, steps: int, world: int) -> list[float]:
    for _ in range(10):
        step()
    times = []
    for _ in range(steps):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _views(rows: int, dims, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, d, generator=g) for d in dims]


def _worker(rank: int, world: int, init_file: str, args, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        dims = args.dims
        measure = TotalCorrelation(dims, critic=MLPCritic(sum(dims)), distributed=True)
        views = _views(args.global_batch // world, dims, seed=rank)
        times = _time(_step_fn(measure, views, world), args.steps, world)
        # The communication alone: row counts, the views' gather and the scores' gather, each with
        # its backward, at the shapes of the step.
        local = torch.cat(views, dim=1).requires_grad_(True)
        scores = torch.zeros(2 * local.shape[0], requires_grad=True)

        def communicate():
            sizes = batch_sizes(local.shape[0], local.device)
            gathered = gather_rows(local, sizes=sizes)
            counts = [2 * n for n in sizes]
            (gathered.sum() + gather_rows(scores, sizes=counts).sum()).backward()

        comm = _time(communicate, args.steps, world)
        if rank == 0:
            with open(out_file, "w") as f:
                json.dump({"step": times, "communication": comm}, f)
    finally:
        dist.destroy_process_group()


def single(args) -> list[float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    measure = TotalCorrelation(args.dims, critic=MLPCritic(sum(args.dims)))
    views = _views(args.global_batch, args.dims, seed=0)
    return _time(_step_fn(measure, views, 1), args.steps, 1)


def two_processes(args) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "times.json")
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), args, out_file), nprocs=2, join=True)
        with open(out_file) as f:
            return json.load(f)


def traffic(global_batch: int, dims, world: int, negatives: int = 1, itemsize: int = 4) -> dict:
    """Bytes per step and rank, from the shapes (equal shares; ring algorithms)."""
    width = sum(dims)
    local = global_batch // world
    views = global_batch * width * itemsize  # the gathered views, every rank
    scores = (global_batch + negatives * global_batch) * itemsize  # joint + product scores
    share = (world - 1) / world
    return {
        "row_counts_bytes": world * 8,
        "views_all_gather_received_bytes": int(share * views),
        "scores_all_gather_received_bytes": int(share * scores),
        # gloo: an all-reduce of the (world, rows, width) block (ring: 2 (W-1)/W of it per rank);
        # NCCL: a reduce-scatter of it ((W-1)/W).
        "views_backward_gloo_bytes": int(2 * share * views),
        "views_backward_nccl_bytes": int(share * views),
        "scores_backward_gloo_bytes": int(2 * share * scores),
        "local_view_bytes": local * width * itemsize,
    }


def memory_table(dims, world: int, batches, negatives: int = 1, itemsize: int = 4) -> list[dict]:
    """Extra memory per rank for the gathered tensors, against one process on the global batch."""
    width = sum(dims)
    rows = []
    for batch in batches:
        gathered = batch * width * itemsize  # the global views (kept for backward)
        transient = batch * width * itemsize  # the gathered parts before cat / the grad block
        product = negatives * batch // world * width * itemsize  # this rank's product rows
        rows.append(
            {
                "global_batch": batch,
                "gathered_views_MiB": gathered / 2**20,
                "transient_MiB": transient / 2**20,
                "product_rows_per_rank_MiB": product / 2**20,
                "one_process_product_rows_MiB": negatives * batch * width * itemsize / 2**20,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--global-batch", type=int, default=256)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 64, 64])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    one = single(args)
    two = two_processes(args)
    comm, two = two["communication"], two["step"]
    result = {
        "global_batch": args.global_batch,
        "dims": args.dims,
        "steps": args.steps,
        "one_process_ms": {"median": 1e3 * statistics.median(one), "min": 1e3 * min(one)},
        "two_processes_gloo_ms": {"median": 1e3 * statistics.median(two), "min": 1e3 * min(two)},
        "communication_gloo_ms": {"median": 1e3 * statistics.median(comm), "min": 1e3 * min(comm)},
        "traffic_per_step_and_rank": traffic(args.global_batch, args.dims, 2),
        "memory_per_rank": memory_table(args.dims, 2, [256, 1024, 4096, 16384, 65536]),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
