"""The protocol of ``mdmest.estimate``: the rows prepared once (checked, split into training,
validation and test parts, the transform fitted on the training rows), each candidate's outcome
valued on the validation rows, the choice made there, and the test rows read for the value."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mdmest.estimation.closed_forms import mixture_critic
from mdmest.estimation.config import EstimateConfig
from mdmest.estimation.evaluation import _evaluate
from mdmest.estimation.recipes import (
    _auto_negatives,
    _fit_transforms,
    _kl_by_name,
    _recipe,
    _value_scale,
)
from mdmest.estimation.rows import _Split, _split
from mdmest.estimation.training import _cuda, _evaluated, _go_cross_rank, _parts, _train

__all__ = ["Prepared", "Outcome", "prepare", "train_critic", "measure_outcome"]

PARTS = ("train", "tuning", "validation", "test")


@dataclass
class Prepared:
    """The rows of one ``estimate`` call, prepared once and shared by every candidate.

    ``arrays`` holds the views after the transform fitted on the training rows (float64,
    all rows); ``parts`` the same rows as tensors on the device, by part: "train", the two
    halves of the validation rows ("tuning": each critic's kept state and shrinkage;
    "validation": the choice among candidates) and "test". ``measure`` is the name asked for
    or the caller's instance. ``source`` holds the checked rows before the transform, from
    which :meth:`in_transform` prepares the same split in another one.
    """

    measure: object
    measure_kwargs: dict
    options: dict
    config: EstimateConfig
    split: _Split
    transform: str | None
    fitted: list | None
    arrays: list[np.ndarray]
    parts: dict[str, list[torch.Tensor]]
    dtype: torch.dtype
    device: torch.device
    source: list[np.ndarray] = field(repr=False, default_factory=list)
    _other: dict = field(repr=False, default_factory=dict)

    def in_transform(self, transform: str | None) -> Prepared:
        """The same rows and split with ``transform`` fitted on the training rows instead (made
        once per call): a candidate whose own transform differs from the critics' one, such as
        the Gaussian-copula bound under the radial map."""
        if transform == self.transform:
            return self
        if transform not in self._other:
            fitted, arrays, parts = _transformed(
                self.source, self.split, transform, self.device, self.dtype
            )
            self._other[transform] = replace(
                self, transform=transform, fitted=fitted, arrays=arrays, parts=parts, _other={}
            )
        return self._other[transform]

    @functools.cached_property
    def mixture_base(self):
        """The critic the recipe's network critics start from (fitted once per call): the
        Gaussian mixture log-ratio fitted on the training rows, its number of components
        chosen on the tuning rows (:func:`~mdmest.estimation.closed_forms.mixture_critic`);
        ``None`` without ``config.mixture_max_components``, for a measure other than "dv" or
        "f" with KL by name, a critic of the caller's, views of fewer features together than
        ``config.mixture_min_features``, or where no mixture reads more than one Gaussian."""
        wanted = self.kl_by_name and "critic" not in self.measure_kwargs
        if not (wanted and self.config.mixture_max_components):
            return None
        if sum(a.shape[1] for a in self.arrays) < self.config.mixture_min_features:
            return None
        base = mixture_critic(self.rows("train"), self.rows("tuning"), self.seed, self.config)
        return base.to(self.device) if base is not None else None

    @property
    def seed(self) -> int:
        return self.options["seed"]

    @property
    def num_views(self) -> int:
        return len(self.arrays)

    @property
    def num_rows(self) -> int:
        return len(self.arrays[0])

    @property
    def by_name(self) -> bool:
        return isinstance(self.measure, str)

    @property
    def kl_by_name(self) -> bool:
        """A measure by name whose bound is KL-type ("dv", or "f" with KL): the one the
        candidates beyond the critic apply to."""
        return _kl_by_name(self.measure, self.measure_kwargs)

    def rows(self, part: str) -> list[np.ndarray]:
        """The transformed rows of one part as float64 arrays."""
        positions = _positions(self.split, part)
        return [a[positions] for a in self.arrays]


def _positions(split: _Split, part: str) -> np.ndarray:
    """Row positions of a part; the validation rows are halved into "tuning" and "validation"."""
    if part in ("tuning", "validation"):
        half = len(split.validation) // 2
        return split.validation[:half] if part == "tuning" else split.validation[half:]
    return getattr(split, part)


def prepare(arrays, measure, measure_kwargs: dict, options: dict, config, transform, dtype, device):
    """Split the checked ``arrays`` once and fit the transform on the training rows."""
    generator = torch.Generator(device=device).manual_seed(options["seed"])
    split = _split(len(arrays[0]), len(arrays), options["test_fraction"], generator, config)
    fitted, mapped, parts = _transformed(arrays, split, transform, device, dtype)
    return Prepared(
        measure, dict(measure_kwargs), dict(options), config, split, transform, fitted,
        mapped, parts, dtype, device, list(arrays),
    )  # fmt: skip


def _transformed(arrays, split: _Split, transform, device, dtype):
    """The transform fitted on the training rows, all rows mapped by it, and the mapped rows as
    tensors on the device by part."""
    fitted = _fit_transforms(transform, [a[split.train] for a in arrays])
    if fitted:
        arrays = [f.transform(a) for f, a in zip(fitted, arrays)]
    tensors = [torch.as_tensor(a).to(device=device, dtype=dtype) for a in arrays]
    parts = {
        part: [
            t.index_select(0, torch.as_tensor(_positions(split, part), device=device))
            for t in tensors
        ]
        for part in PARTS
    }
    return fitted, list(arrays), parts


@dataclass
class Outcome:
    """What one candidate produced: its value and standard error on the validation rows and
    (once the choice is made) on the test rows, in the views' units; for a trained critic,
    its measure and training record; the seconds its run took (set by ``estimate``)."""

    name: str
    validation: tuple[float, float]
    score: Callable[[str], tuple[float, float]] = field(repr=False)
    measure: object | None = None
    history: np.ndarray | None = None
    step_seconds: np.ndarray | None = None
    train_bound: float = math.nan
    value_scale: float = 1.0
    test: tuple[float, float] | None = None
    transform: str | None = None
    fitted: list | None = field(default=None, repr=False)
    seconds: float = math.nan

    @property
    def constant(self) -> bool:
        """A trained critic shrunk all the way to a constant on the validation rows (value 0)."""
        parts = _parts(self.measure) if self.measure is not None else []
        return bool(parts) and all(getattr(p, "shrink", 1.0) == 0.0 for p in parts)

    def read_test(self) -> tuple[float, float]:
        if self.test is None:
            self.test = self.score("test")
        return self.test


def measure_outcome(data: Prepared, name: str, measure, **record) -> Outcome:
    """An outcome whose value on a part is ``measure``'s bound on its rows, product rows drawn
    from a generator seeded with the call's seed (the same draws for every candidate)."""
    scale = _value_scale(measure, data.fitted)
    config = data.config

    def score(part: str) -> tuple[float, float]:
        product_rows = (
            config.validation_product_rows if part == "validation" else config.eval_product_rows
        )
        saved = measure.generator
        measure.generator = torch.Generator(device=data.device).manual_seed(data.seed)
        try:
            value, stderr = _evaluate(
                _evaluated(measure),
                data.parts[part],
                data.options["eval_negatives"],
                product_rows,
                config.stderr_folds,
            )
        finally:
            measure.generator = saved
        return value * scale, stderr * scale

    record.setdefault("value_scale", scale)
    return Outcome(
        name, score("validation"), score, measure=measure, transform=data.transform,
        fitted=data.fitted, **record,
    )  # fmt: skip


def train_critic(
    data: Prepared,
    name: str,
    *,
    weight_decay: float | None = None,
    decomposition: str | None = None,
    deep: bool = False,
    start_from: Outcome | None = None,
    lr_factor: float = 1.0,
    mixture: bool = True,
) -> Outcome:
    """Train one critic on the training rows (the best state on the tuning rows kept) and value
    it on the validation rows. Options left ``None`` are the call's own; ``start_from`` trains a copy of
    that outcome's measure further, with a fresh optimiser. ``mixture=False``: the recipe's critic
    without the fitted mixture it otherwise starts from (:attr:`Prepared.mixture_base`)."""
    options = data.options
    decomposition = options["decomposition"] if decomposition is None else decomposition
    weight_decay = options["weight_decay"] if weight_decay is None else weight_decay
    with torch.random.fork_rng(devices=_cuda(data.device)):
        torch.manual_seed(data.seed)
        # Another stream of draws for a run that goes on from where one stopped.
        generator = torch.Generator(device=data.device).manual_seed(
            data.seed + (1 if start_from is not None else 0)
        )
        if start_from is not None:
            measure = copy.deepcopy(start_from.measure)  # its negatives as they adapted
            auto = data.kl_by_name and options["negatives"] in (None, "auto")
        elif data.by_name:
            dims = [a.shape[1] for a in data.arrays]
            base = data.mixture_base if decomposition is None and mixture else None
            measure, auto = _recipe(
                data.measure, dims, decomposition, options["negatives"], data.measure_kwargs,
                deep, base,
            )  # fmt: skip
        else:
            measure = data.measure
            auto = _auto_negatives(measure, options["negatives"], by_name=False)
        measure = measure.to(data.device)
        _go_cross_rank(measure)  # under torchrun: the rows of every step split over the ranks
        measure.generator = generator
        try:
            history, seconds = _train(
                measure, data.parts["train"], data.parts["tuning"], options["steps"],
                options["batch_size"], options["lr"] * lr_factor, options["lr_schedule"],
                weight_decay, auto, options["progress"], generator,
                data.config.product_grad_rows,
            )  # fmt: skip
        finally:
            measure.generator = None
    scale = _value_scale(measure, data.fitted)
    history = history * scale
    if start_from is not None:
        history = np.concatenate([start_from.history, history])
        seconds = np.concatenate([start_from.step_seconds, seconds])
    train_bound = float(history[-100:].mean())
    return measure_outcome(
        data, name, measure, history=history, step_seconds=seconds, train_bound=train_bound
    )
