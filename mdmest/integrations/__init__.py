"""The dependency penalty and the held-out bound inside PyTorch Lightning and torchmetrics.

An extra: ``pip install "mdmest[integrations]"`` installs ``lightning``, ``torchmetrics`` and
``tensorboard``. ``import mdmest`` never imports this package, and each name imports only the
library it needs, when it is first used:

- ``DependencyPenalty`` (needs ``lightning``): a Lightning
  callback that adds ``weight * measure(z...)`` to a LightningModule's loss, trains the measure's
  critic with its own optimiser and logs the bound;
- ``StreamingBoundMetric`` (needs ``torchmetrics``): the
  held-out bound of a measure over every batch of an epoch, reduced over processes by torchmetrics.

See docs/integrations.md for runnable examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and the API docs; at run time __getattr__ imports them
    from mdmest.integrations._lightning import DependencyPenalty
    from mdmest.integrations._torchmetrics import StreamingBoundMetric

__all__ = ["DependencyPenalty", "StreamingBoundMetric"]

# Each public name, the private module that defines it and the package that module needs.
_HOMES = {
    "DependencyPenalty": ("mdmest.integrations._lightning", "lightning"),
    "StreamingBoundMetric": ("mdmest.integrations._torchmetrics", "torchmetrics"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'mdmest.integrations' has no attribute {name!r}")
    module, package = _HOMES[name]
    try:
        home = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != package:
            raise
        raise ImportError(
            f"mdmest.integrations.{name} needs the {package} package: pip install "
            f'"mdmest[integrations]" (or pip install {package})'
        ) from error
    return getattr(home, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
