"""A warning for rows that bypass the transform ``estimate`` fitted: the measure it returns was
trained on rows in that transform, and raw rows give another, meaningless value."""

from __future__ import annotations

import math
import warnings

import torch

from mdmest.estimation.result import EstimateWarning

__all__ = ["TransformGuard", "guard_measure"]

#: Rows of a view in a copula transform have features of mean about 0 and variance about 1; a
#: view whose root-mean-square feature mean exceeds this, or whose mean feature variance is off
#: by more than this factor either way, is taken as not transformed.
MEAN_LIMIT = 1.0
VARIANCE_FACTOR = 9.0
#: The rows of each call that are looked at (the first ones).
ROWS_CHECKED = 512


class TransformGuard:
    """A forward pre-hook for a critic: warns once, naming the view, when its input rows do not
    look like rows in a copula transform (see ``MEAN_LIMIT`` and ``VARIANCE_FACTOR``)."""

    def __init__(self, dims, names=None) -> None:
        self.dims = [int(d) for d in dims]
        self.names = list(names) if names else None
        self.warned = False

    def __call__(self, module, inputs) -> None:
        if self.warned or not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        rows = inputs[0].detach()[:ROWS_CHECKED]
        if rows.dim() != 2 or rows.shape[0] < 32 or rows.shape[1] != sum(self.dims):
            return
        for k, view in enumerate(rows.float().split(self.dims, dim=1)):
            mean = float(view.mean(0).pow(2).mean().sqrt())
            variance = float(view.var(0).mean())
            off = not (1 / VARIANCE_FACTOR <= variance <= VARIANCE_FACTOR)
            if mean > MEAN_LIMIT or off or not math.isfinite(variance):
                self.warned = True
                label = repr(self.names[k]) if self.names else f"view {k}"
                warnings.warn(
                    f"{label} does not look like rows in the transform estimate fitted (feature "
                    f"means {mean:.3g} root-mean-square, mean variance {variance:.3g}; expected "
                    "about 0 and 1): pass new rows through result.transform_views(rows) before "
                    "result.measure.estimate or scores",
                    EstimateWarning,
                    stacklevel=2,
                )
                return


def guard_measure(measure, names=None) -> None:
    """Attach a :class:`TransformGuard` to the critic of ``measure`` (each term's, for a
    decomposition is skipped: its terms see groups of views)."""
    critic = getattr(measure, "critic", None)
    dims = getattr(measure, "dims", None)
    if isinstance(critic, torch.nn.Module) and dims is not None:
        critic.register_forward_pre_hook(TransformGuard(dims, names))
