"""Tests of mdmest.integrations: the Lightning penalty callback and the torchmetrics bound.

lightning and torchmetrics are in the ``integrations`` extra, which ``make install`` installs: the
tests import them and fail, not skip, where they are missing.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mdmest import TotalCorrelation
from mdmest.integrations import DependencyPenalty, StreamingBoundMetric

ROOT = Path(__file__).parents[1]


def docs_examples() -> list[str]:
    text = (ROOT / "docs" / "integrations.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_example(code: str, folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(code, "docs/integrations.md", "exec"), namespace)
    return namespace


def test_import_mdmest_imports_no_integration():
    code = (
        "import sys, mdmest, mdmest.fusion.training\n"
        "print([m for m in ('mdmest.integrations', 'lightning', 'torchmetrics') "
        "if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.delitem(sys.modules, "mdmest.integrations._lightning")
    monkeypatch.setitem(sys.modules, "lightning", None)  # "import lightning" fails
    import mdmest.integrations

    with pytest.raises(ImportError, match=r"DependencyPenalty needs the lightning package"):
        mdmest.integrations.DependencyPenalty  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Penalty'"):
        mdmest.integrations.Penalty  # noqa: B018


# -- the Lightning callback ---------------------------------------------------------------------


def test_the_lightning_example_trains_the_critic_and_logs_the_bound(tmp_path, monkeypatch):
    example = run_example(docs_examples()[0], tmp_path, monkeypatch)
    model, trainer = example["model"], example["trainer"]
    metrics = trainer.callback_metrics
    assert {"dependency/bound_epoch", "dependency/penalty_epoch", "valid_bound"} <= set(metrics)
    # The penalty is the measure's loss: by default, on encoders' outputs, the negated JS bound
    # (the critic_objective="auto" of the measures), so below 0 where the critic learned.
    assert float(metrics["dependency/penalty_epoch"]) < 0
    # 768 rows in batches of 64, 3 epochs: the critic's Adam took one step per batch.
    critic_state = model.penalty.critic_optimizer.state_dict()["state"]
    assert {int(s["step"]) for s in critic_state.values()} == {36}
    # The critic learned a positive bound between the views of one signal.
    assert metrics["valid_bound"] > 0.3
    # valid_bound is the streaming bound over the validation batches with the final critic.
    bound = model.penalty.measure.streaming(generator=0)
    model.eval()
    with torch.no_grad():
        for x_a, x_b, _ in DataLoader(example["valid"], batch_size=64):
            _, z_a, z_b = model(x_a, x_b)
            bound.update(z_a, z_b)
    assert float(metrics["valid_bound"]) == pytest.approx(float(bound.compute()), abs=1e-6)
    assert (tmp_path / "logs").is_dir()


class TwoViews(pl.LightningModule):
    """Two linear encoders, a head, and the penalty on the two representations."""

    def __init__(self, penalty: DependencyPenalty):
        super().__init__()
        torch.manual_seed(0)
        self.encode_a, self.encode_b, self.head = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(4, 1)
        self.penalty = penalty

    def configure_callbacks(self):
        return [self.penalty]

    def training_step(self, batch, batch_idx):
        x_a, x_b, y = batch
        z_a, z_b = self.encode_a(x_a), self.encode_b(x_b)
        task = nn.functional.mse_loss(self.head(torch.cat([z_a, z_b], 1)), y)
        return task + self.penalty(z_a, z_b)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def two_view_loader(rows: int = 32) -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(rows, 3, generator=generator)
    data = TensorDataset(x, x + 0.1 * torch.randn(rows, 3, generator=generator), x[:, :1])
    return DataLoader(data, batch_size=rows)


def fit(module: pl.LightningModule, folder: Path, steps: int, **options) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps,
        default_root_dir=folder,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )
    trainer.fit(module, two_view_loader())
    return trainer


def test_the_weight_reaches_the_encoders_and_not_the_critic(tmp_path):
    after = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        penalty = DependencyPenalty(TotalCorrelation([2, 2]), weight=weight, critic_lr=0.1)
        module = TwoViews(penalty)
        critic_before = [p.detach().clone() for p in penalty.measure.parameters()]
        fit(module, tmp_path / str(weight), steps=1)
        critic = [p.detach().clone() for p in penalty.measure.parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(critic_before, critic))
        after[weight] = (module.encode_a.weight.detach().clone(), critic)
    # One step from the same start: the encoders feel the weight, the critic's step does not.
    assert not torch.allclose(after[0.0][0], after[1.0][0])
    for a, b in zip(after[0.0][1], after[1.0][1]):
        assert torch.equal(a, b)


def test_the_critic_is_saved_in_lightning_checkpoints_and_restored(tmp_path):
    # The DV objective, whose moving average (num_updates) is part of the measure's state.
    penalty = DependencyPenalty(
        TotalCorrelation([2, 2], critic_objective="dv"), weight=0.5, critic_lr=0.05
    )
    trainer = fit(TwoViews(penalty), tmp_path, steps=3)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    saved = torch.load(tmp_path / "run.ckpt", weights_only=False)["callbacks"]
    (state,) = [state for key, state in saved.items() if "DependencyPenalty" in key]
    assert int(state["measure"]["num_updates"]) == 3
    # A new run restores the critic and its optimiser from the checkpoint, then goes on.
    again = DependencyPenalty(
        TotalCorrelation([2, 2], critic_objective="dv"), weight=0.5, critic_lr=0.05
    )
    resumed = pl.Trainer(max_steps=5, default_root_dir=tmp_path, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False)  # fmt: skip
    resumed.fit(TwoViews(again), two_view_loader(), ckpt_path=tmp_path / "run.ckpt")
    assert int(again.measure.num_updates) == 5
    steps = {int(s["step"]) for s in again.critic_optimizer.state_dict()["state"].values()}
    assert steps == {5}


def test_a_measure_inside_the_module_is_refused(tmp_path):
    class Owning(TwoViews):
        def __init__(self, penalty):
            super().__init__(penalty)
            self.measure = penalty.measure  # a submodule: the module's optimiser would step it

    penalty = DependencyPenalty(TotalCorrelation([2, 2]), weight=0.1)
    with pytest.raises(ValueError, match="also the LightningModule's"):
        fit(Owning(penalty), tmp_path, steps=1)


def test_bad_arguments_of_the_callback_are_named():
    with pytest.raises(TypeError, match="loss\\(\\*views, weight=...\\) method; got Linear"):
        DependencyPenalty(nn.Linear(2, 2), weight=0.1)
    with pytest.raises(ValueError, match="weight must be >= 0, got -1"):
        DependencyPenalty(TotalCorrelation([2, 2]), weight=-1)


# -- the torchmetrics Metric --------------------------------------------------------------------


def test_the_torchmetrics_example_reads_the_bound(tmp_path, monkeypatch, capsys):
    example = run_example(docs_examples()[1], tmp_path, monkeypatch)
    value = float(example["held_out"].compute())
    true = math.log(5)  # two coordinates, each 0.5 log 5
    assert 0.8 * true < value < true + 0.05
    assert f"held-out bound {value:.3f} nats" in capsys.readouterr().out


def batches(seed: int, count: int, rows: int = 24) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        z = torch.randn(rows, 2, generator=generator)
        out.append((z, z + 0.3 * torch.randn(rows, 2, generator=generator)))
    return out


def trained_measure() -> TotalCorrelation:
    torch.manual_seed(0)
    measure = TotalCorrelation([2, 2])
    optimizer = torch.optim.Adam(measure.parameters(), lr=1e-2)
    for views in batches(5, 30, rows=64):
        loss = measure(*views)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return measure


def test_the_metric_is_the_streaming_bound_of_the_same_batches():
    measure = trained_measure()
    metric = StreamingBoundMetric(measure, generator=3)
    reference = measure.streaming(generator=3)
    for views in batches(0, 4):
        metric.update(*views)
        reference.update(*views)
    assert torch.equal(metric.compute(), reference.compute())
    assert torch.equal(metric.compute(), metric.compute())  # re-seeded at every compute
    assert list(metric.parameters()) == []  # the critic stays out of the holder's parameters
    metric.reset()
    with pytest.raises(RuntimeError, match="at least one update"), pytest.warns(UserWarning):
        metric.compute()  # torchmetrics warns too


def test_bad_input_to_the_metric_is_named():
    with pytest.raises(TypeError, match="with a streaming bound .*; got Linear"):
        StreamingBoundMetric(nn.Linear(2, 2))
    metric = StreamingBoundMetric(TotalCorrelation([2, 2]))
    with pytest.raises(ValueError, match="the measure has 2 views; update got 3 tensors"):
        metric.update(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4, 2))


def _metric_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        metric = StreamingBoundMetric(trained_measure(), generator=7)
        for views in batches(seed=rank, count=3 if rank == 0 else 2):  # uneven on purpose
            metric.update(*views)
        value = float(metric.compute())
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(value))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_compute_the_bound_of_every_rank(tmp_path):
    with tempfile.TemporaryDirectory() as folder:
        init_file = os.path.join(folder, "init")
        mp.spawn(_metric_worker, args=(init_file, str(tmp_path)), nprocs=2, join=True)
    values = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    reference = trained_measure().streaming(generator=7)
    for views in batches(seed=0, count=3) + batches(seed=1, count=2):  # rank 0's, then rank 1's
        reference.update(*views)
    assert values[0] == values[1] == pytest.approx(float(reference.compute()), abs=1e-6)
