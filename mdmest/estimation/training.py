"""The critic's training loop: Adam on minibatches, adaptive negatives, subnormal floats flushed,
and with few rows the state that does best on the validation rows."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from mdmest import functional as Fn
from mdmest.distributed import CrossRankSampler, all_reduce_mean_grads, is_distributed
from mdmest.estimation.evaluation import EVAL_PRODUCT_ROWS, _evaluate

__all__ = [
    "AUTO_CHECK_STEPS",
    "AUTO_ESS_FRACTION",
    "AUTO_MAX_NEGATIVES",
    "PRODUCT_GRAD_ROWS",
    "VALIDATION_CHECKS",
    "VALIDATION_MARGIN",
    "SHRINKS",
    "MIN_VALIDATION_ROWS",
]

#: ``negatives="auto"``: every ``AUTO_CHECK_STEPS`` steps, if the product rows' mean effective sample
#: fraction (:func:`mdmest.functional.effective_sample_fraction`) fell below ``AUTO_ESS_FRACTION``,
#: the negatives double, up to ``AUTO_MAX_NEGATIVES``.
AUTO_CHECK_STEPS = 100
AUTO_ESS_FRACTION = 0.1
AUTO_MAX_NEGATIVES = 16
#: ``negatives="auto"``: with more product rows per step than this, the product side's gradient
#: comes from this many rows drawn by their weight in the bound, the value from all of them
#: (:meth:`mdmest.measures.DependencyMeasure._sampled_product_grad`; unbiased): at 16 negatives of
#: 256 rows about half the step's time.
PRODUCT_GRAD_ROWS = 1024
#: The state kept is the one whose validation bound less ``VALIDATION_MARGIN`` standard errors is
#: highest (the untrained critic and every ``steps // VALIDATION_CHECKS`` steps, and steps 1, 2,
#: 4, ...), then its scores are shrunk toward a constant by the factor among ``SHRINKS`` the same
#: rule picks; with fewer than ``MIN_VALIDATION_ROWS`` validation rows, all the way (the value is
#: 0). Chosen on 3 Gaussian views at TC 1 nat, 50 to 2000 rows (docs/estimate.md, "Few rows").
VALIDATION_CHECKS = 20
VALIDATION_MARGIN = 1.0
SHRINKS = (1.0, 0.5, 0.25, 0.0)
MIN_VALIDATION_ROWS = 20


def _cuda(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []


def _flush_denormal_on() -> bool:
    return float(torch.tensor([1e-40], dtype=torch.float32).mul(1.0)[0]) == 0.0


@contextlib.contextmanager
def _flush_denormal() -> Iterator[None]:
    """Flush subnormal floats to zero on the CPU for the block, then restore the caller's state.

    Critic weights and Adam's moments can decay into the subnormal range, where every CPU
    multiply costs ~100x (measured: steps of 400 ms instead of 4 ms late in a run).
    """
    was_on = _flush_denormal_on()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported and not was_on:
            torch.set_flush_denormal(False)


# -- under a process group (torchrun) -------------------------------------------------------------
def _parts(measure) -> list:
    """The measures that draw product rows: the terms of a decomposition, or the measure."""
    return list(getattr(measure, "terms", [measure]))


def _cross_rank(measure) -> bool:
    """Whether ``measure`` splits its rows over the ranks of a process group (``estimate`` under
    ``torchrun``): then every rank feeds it its contiguous part of each set of rows, and the
    measure computes the bound of all of them (mdmest.distributed)."""
    return all(
        isinstance(part.sampler, CrossRankSampler) and part.sampler.active()
        for part in _parts(measure)
    )


def _go_cross_rank(measure) -> None:
    """Under a process group of more than one rank, draw every part's product rows across ranks
    and give every rank rank 0's initial critic."""
    if not is_distributed():
        return
    import torch.distributed as dist

    for part in _parts(measure):
        if not isinstance(part.sampler, CrossRankSampler):
            part.sampler = CrossRankSampler(part.sampler)
    with torch.no_grad():
        for tensor in [*measure.parameters(), *measure.buffers()]:
            dist.broadcast(tensor.data, 0)


@contextlib.contextmanager
def _product_grad_rows(parts: list, rows: int | None) -> Iterator[None]:
    """Each part's ``product_grad_rows`` set to ``rows`` for the block, then restored."""
    saved = [part.product_grad_rows for part in parts]
    for part in parts:
        part.product_grad_rows = rows
    try:
        yield
    finally:
        for part, value in zip(parts, saved):
            part.product_grad_rows = value


def _mine(rows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous part of ``rows`` (along dim 0)."""
    import torch.distributed as dist

    return rows.tensor_split(dist.get_world_size())[dist.get_rank()]


class _RankShards:
    """What :func:`_evaluate` needs of a measure (``negatives``, ``estimate``), fed with this
    rank's part of the rows, so that the value is that of all rows on every rank."""

    def __init__(self, measure) -> None:
        self.measure = measure

    @property
    def negatives(self) -> int:
        return self.measure.negatives

    def estimate(self, *views: torch.Tensor, **options) -> torch.Tensor:
        return self.measure.estimate(*(_mine(v) for v in views), **options)


def _evaluated(measure):
    """``measure``, or under a process group its :class:`_RankShards`."""
    return _RankShards(measure) if _cross_rank(measure) else measure


def _train(
    measure,
    train: list[torch.Tensor],
    validation: list[torch.Tensor],
    steps: int,
    batch_size: int,
    lr: float,
    lr_schedule: str | None,
    weight_decay: float,
    auto_negatives: bool,
    progress: bool,
    generator: torch.Generator,
    product_grad_rows: int | None = PRODUCT_GRAD_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Train the critic; returns the bound and the wall seconds of each step.

    With validation rows, the critic kept is the one with the best validation bound among the
    untrained one and those checked every ``steps // VALIDATION_CHECKS`` steps.
    """
    device = train[0].device
    n_train = train[0].shape[0]
    # Under torchrun: every rank draws the same global batch (the generator is seeded alike) and
    # feeds the measure its part of it; the loss and, averaged, the gradients are one process's.
    sharded = _cross_rank(measure)
    batch_size = min(batch_size, n_train)
    parameters = list(measure.parameters())
    # One fused kernel per step where torch has one (CPU and CUDA): about 10% of a step on CPU.
    fused = bool(parameters) and all(p.device.type in ("cpu", "cuda") for p in parameters)
    optimizer = (
        torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
        if weight_decay
        else torch.optim.Adam(parameters, lr=lr, fused=fused or None)
    )
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        if lr_schedule == "cosine"
        else None
    )
    history = torch.empty(steps, device=device)
    step_seconds = np.empty(steps)
    # Each KL part adapts its own negatives (the terms of a decomposed measure, or the measure).
    parts = _parts(measure)
    ess_sum = torch.zeros(len(parts), device=device)
    keeper = _BestOnValidation(measure, validation, steps)
    keeper.check(0)
    measure.train()
    batches_per_epoch = n_train // batch_size
    bar = tqdm(range(steps), desc=f"{type(measure).__name__}", disable=not progress, leave=False)
    with _product_grad_rows(parts, product_grad_rows if auto_negatives else None):
        for step in bar:
            started = time.perf_counter()
            if step % batches_per_epoch == 0:
                epoch_order = torch.randperm(n_train, generator=generator, device=device)
            start = (step % batches_per_epoch) * batch_size
            idx = epoch_order[start : start + batch_size]
            if sharded:
                idx = _mine(idx)
            loss = measure(*(t.index_select(0, idx) for t in train))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if sharded:
                all_reduce_mean_grads([p for p in measure.parameters() if p.requires_grad])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history[step] = measure.last_bound
            if auto_negatives:
                ess_sum += torch.stack(
                    [Fn.effective_sample_fraction(part.last_product_scores) for part in parts]
                )
                if (step + 1) % AUTO_CHECK_STEPS == 0:
                    # One host synchronisation per AUTO_CHECK_STEPS steps.
                    for part, low in zip(
                        parts, (ess_sum < AUTO_ESS_FRACTION * AUTO_CHECK_STEPS).tolist()
                    ):
                        if low:
                            part.negatives = min(2 * part.negatives, AUTO_MAX_NEGATIVES)
                    ess_sum.zero_()
            step_seconds[step] = time.perf_counter() - started
            keeper.check(step + 1)
            if progress and (step + 1) % 100 == 0:
                bar.set_postfix(bound=f"{history[max(0, step - 99) : step + 1].mean().item():.3f}")
    keeper.restore()
    return history.cpu().numpy(), step_seconds


class _BestOnValidation:
    """Keeps the measure's state whose validation bound, less one standard error, is highest.

    Checked before the first step, at steps 1, 2, 4, 8, ... (with few rows the critic overfits
    within a few epochs) and every ``steps // VALIDATION_CHECKS`` steps. Ranking by the bound less
    its standard error keeps the untrained critic (about 0, with almost no spread) unless a trained
    one beats it by more than the noise of the validation rows. Without validation rows it does
    nothing and the final critic is kept.
    """

    def __init__(self, measure, validation: list[torch.Tensor], steps: int) -> None:
        self.measure = measure
        self.validation = validation
        self.enabled = validation[0].shape[0] > 0
        every = max(1, steps // VALIDATION_CHECKS)
        doubling = {2**k for k in range(int(math.log2(steps)) + 1)}
        self.at = {0, steps} | doubling | set(range(every, steps, every))
        self.best = -math.inf
        self.state: dict | None = None

    def check(self, step: int) -> None:
        if not self.enabled or step not in self.at:
            return
        score = self._score()
        if score > self.best:
            self.best = score
            self.state = copy.deepcopy(self.measure.state_dict())
        self.measure.train()

    def _score(self) -> float:
        """The validation bound less ``VALIDATION_MARGIN`` standard errors."""
        value, stderr = _evaluate(
            _evaluated(self.measure), self.validation, None, EVAL_PRODUCT_ROWS // 16
        )
        return value - VALIDATION_MARGIN * (stderr if math.isfinite(stderr) else 0.0)

    def restore(self) -> None:
        """Load the best state, then shrink its scores toward the null score as far as the
        validation rows ask (:attr:`DependencyMeasure.shrink`; 0 when no trained critic
        beats a constant one by a standard error)."""
        if self.state is None:
            return
        self.measure.load_state_dict(self.state)
        parts = _parts(self.measure)
        best, kept = -math.inf, 1.0
        # Too few validation rows cannot tell a critic that generalises from a lucky one
        # (3 Gaussian views at 1 nat, 10 validation rows: a kept critic read +0.7 there and
        # -0.7 on fresh rows): then only the constant critic is trusted.
        few = self.validation[0].shape[0] < MIN_VALIDATION_ROWS
        for shrink in (0.0,) if few else SHRINKS:
            for part in parts:
                part.shrink = shrink
            score = self._score()
            if score > best + 1e-12:
                best, kept = score, shrink
        for part in parts:
            part.shrink = kept
