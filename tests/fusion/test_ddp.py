"""The fusion Trainer and ``mdmest train`` on 2 gloo processes (DDP, the measure's product rows from
the global batch): rank 0 writes, every rank reports the same metrics, a run resumes on any number
of processes, and a run killed mid-epoch and resumed under torchrun ends exactly as one never
interrupted."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from mdmest.fusion.data import load_dataset, make_loader
from mdmest.fusion.models import build_model
from mdmest.fusion.training import TrainConfig, Trainer
from mdmest.fusion.training.distributed import GlobalBatchSampler

WORLD = 2
ROOT = Path(__file__).parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _dataset():
    return load_dataset(
        "synthetic:mosi", n_train=40, n_valid=15, n_test=13, text_dim=12, length_range=(3, 6)
    )


def _trainer(out_dir: str, epochs: int) -> Trainer:
    dataset = _dataset()
    spec = dict(name="ef_lstm", text_dim=dataset.d_text, audio_dim=dataset.d_audio,
                video_dim=dataset.d_video, hidden_dim=8, num_layers=1)  # fmt: skip
    config = TrainConfig(epochs=epochs, batch_size=12, penalty="dv", penalty_weight=0.1,
                         progress=False, seed=3)  # fmt: skip
    return Trainer(build_model(**spec), dataset, config, out_dir=out_dir, model_spec=spec)


def _fit(out_dir: str, epochs: int, resume: bool) -> dict:
    trainer = _trainer(out_dir, epochs)
    summary = trainer.fit(resume=resume)
    return {
        "summary": summary,
        "history": [{k: v for k, v in e.items() if k != "seconds"} for e in trainer.history],
        "world": trainer.world_size,
    }


def _plain_fit() -> dict:
    """EF-LSTM without batch norm, dropout and penalty on 41 rows in global batches of 12 (the
    last one, 5 rows, splits 3 + 2): nothing differs from one process but the sharding."""
    dataset = load_dataset(
        "synthetic:mosi", n_train=41, n_valid=15, n_test=13, text_dim=12, length_range=(3, 6)
    )
    spec = dict(name="ef_lstm", text_dim=dataset.d_text, audio_dim=dataset.d_audio,
                video_dim=dataset.d_video, hidden_dim=8, num_layers=1, dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(**spec)
    model.norm = nn.Identity()
    config = TrainConfig(epochs=2, batch_size=12, progress=False, seed=3)
    trainer = Trainer(model, dataset, config)
    trainer.fit()
    return {
        "state": {k: v.tolist() for k, v in trainer.model.state_dict().items()},
        "task_loss": [e["task_loss"] for e in trainer.history],
    }


def _worker(rank: int, init_file: str, out_dir: str, epochs: int, resume: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        result = _fit(out_dir, epochs, resume) if epochs else _plain_fit()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _spawn(out_dir: Path, epochs: int, resume: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_worker, args=(init_file, str(out_dir), epochs, resume), nprocs=WORLD, join=True)
    results = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for r in range(WORLD):
        (out_dir / f"rank{r}.json").unlink()
    return results


def test_the_global_batches_are_those_of_one_process():
    one = list(GlobalBatchSampler(10, 4, 7, world=1, rank=0))
    parts = [list(GlobalBatchSampler(10, 4, 7, world=2, rank=r)) for r in range(2)]
    assert [a + b for a, b in zip(*parts)] == one
    split = _dataset()["train"]  # 40 segments: make_loader's batches of seed + epoch
    loader = make_loader(split, 12, shuffle=True, seed=3 + 2)
    sampler = GlobalBatchSampler(len(split), 12, 3, world=1, rank=0)
    sampler.set_epoch(2)
    ids = [split[i].id for batch in sampler for i in batch]
    assert ids == [segment for batch in loader for segment in batch["id"]]
    # A last global batch with fewer rows than ranks is skipped by every rank.
    for rows, batches in ((9, 2), (10, 3)):  # 4 + 4 + 1 rows: the last skipped; 4 + 4 + 2 not
        samplers = [GlobalBatchSampler(rows, 4, 0, world=2, rank=r) for r in (0, 1)]
        assert [len(list(s)) for s in samplers] == [len(s) for s in samplers] == [batches] * 2


def test_two_processes_take_the_steps_of_one_on_the_same_global_batches(tmp_path):
    one = _plain_fit()
    two = _spawn(tmp_path, epochs=0)
    assert two[0] == two[1]
    assert two[0]["task_loss"] == pytest.approx(one["task_loss"], abs=1e-6)
    for name, value in one["state"].items():
        assert torch.tensor(two[0]["state"][name]) == pytest.approx(torch.tensor(value), abs=1e-6)


def test_two_processes_train_rank0_writes_and_every_rank_reports_the_same(tmp_path):
    out = tmp_path / "run"
    ranks = _spawn(out, epochs=2)
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "metrics.json"}
    assert ranks[0]["world"] == WORLD
    assert ranks[0]["summary"] == ranks[1]["summary"]
    assert ranks[0]["history"] == ranks[1]["history"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD and len(metrics["epochs"]) == 2
    assert metrics["test"] == ranks[0]["summary"]["test"]
    assert all(math.isfinite(e["bound_estimate"]) for e in metrics["epochs"])

    # The same run continues on one process ...
    single = _fit(str(out), epochs=3, resume=True)
    assert single["world"] == 1 and single["summary"]["epochs_run"] == 3
    assert single["history"][:2] == ranks[0]["history"]
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 3


def test_a_one_process_run_continues_on_two(tmp_path):
    out = tmp_path / "run"
    single = _fit(str(out), epochs=1, resume=False)
    ranks = _spawn(out, epochs=2, resume=True)
    assert ranks[0]["summary"]["epochs_run"] == 2
    assert ranks[0]["history"][:1] == single["history"]
    assert ranks[0]["history"] == ranks[1]["history"]


# -- the command line under torchrun, killed and resumed ----------------------------------------------
TRAIN = [
    "-m", "mdmest.cli", "train", "--model", "ef_lstm", "--penalty", "dv", "--weight", "0.1",
    "--data", "synthetic:mosi", "--batch-size", "8", "--epochs", "3", "--no-progress",
    "--data-option", "n_train=160", "--data-option", "n_valid=16", "--data-option", "n_test=16",
    "--data-option", "text_dim=12", "--data-option", "length_range=[3, 6]",
    "--model-option", "hidden_dim=8", "--model-option", "num_layers=1",
]  # fmt: skip


def _torchrun(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(TORCHRUN), "--standalone", f"--nproc-per-node={WORLD}", *TRAIN, *args]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen
    )


def _finish(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output
    return output


def _final(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    epochs = [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["epochs"]]
    return {"epochs": epochs, "test": metrics["test"], "best_epoch": metrics["best_epoch"]}


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to python")
def test_a_torchrun_run_killed_mid_epoch_resumes_to_the_same_end(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = _torchrun("--out", str(whole))
    victim = _torchrun("--out", str(killed), start_new_session=True)
    deadline = time.monotonic() + 90
    while not (killed / "last.pt").exists():  # epoch 1 is written: epoch 2 is under way
        assert victim.poll() is None and time.monotonic() < deadline, "the run ended too soon"
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert len(json.loads((killed / "metrics.json").read_text())["epochs"]) < 3
    output = _finish(_torchrun("--out", str(killed), "--resume"))
    assert output.count("best epoch") == 1  # rank 0 prints, once
    _finish(uninterrupted)
    assert _final(killed) == _final(whole)  # bit-identical on the CPU
