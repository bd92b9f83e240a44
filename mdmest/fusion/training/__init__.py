"""Train and evaluate fusion models with a dependency penalty (paper Eq. 5).

Modules:

- :mod:`~mdmest.fusion.training.config`: :class:`TrainConfig` (``TrainConfig.for_model`` gives a
  model's published settings), the penalties, task losses and selectable metrics;
- :mod:`~mdmest.fusion.training.trainer`: :class:`Trainer` and :func:`train`;
- :mod:`~mdmest.fusion.training.evaluation`: :class:`Predictions`, modality drop, Fig. 2's
  ratios, the critic-score CSV;
- :mod:`~mdmest.fusion.training.state`: :class:`TrainerState` (the run's progress) and the random
  state a checkpoint keeps;
- :mod:`~mdmest.fusion.training.callbacks`: the hooks of the loop and the built-in callbacks
  (early stopping, checkpoints, CSV and TensorBoard logs, progress bars);
- :mod:`~mdmest.fusion.training.checkpoint`: reading and atomic writing of checkpoints and JSON.
"""

from mdmest.fusion.models import build_model, default_training, model_names
from mdmest.fusion.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    read_checkpoint,
    save_checkpoint,
    write_json,
)
from mdmest.fusion.training.config import (
    PENALTIES,
    PRESETS,
    SELECTABLE_METRICS,
    TASK_LOSSES,
    TrainConfig,
    check_device,
)
from mdmest.fusion.training.evaluation import (
    LOWER_IS_BETTER,
    Predictions,
    drop_modalities,
    drop_ratios,
    is_better,
    predict,
    write_scores_csv,
)
from mdmest.fusion.training.state import rng_state, seed_everything, set_rng_state
from mdmest.fusion.training.trainer import Trainer, train

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "LOWER_IS_BETTER",
    "PENALTIES",
    "PRESETS",
    "Predictions",
    "SELECTABLE_METRICS",
    "TASK_LOSSES",
    "TrainConfig",
    "Trainer",
    "build_model",
    "check_device",
    "default_training",
    "drop_modalities",
    "drop_ratios",
    "is_better",
    "model_names",
    "predict",
    "read_checkpoint",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "train",
    "write_json",
    "write_scores_csv",
]
