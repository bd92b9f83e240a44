"""Multimodal sentiment models trained with a dependency penalty (extra ``fusion``).

Subpackages: ``data`` (datasets, the MAG-BERT / MMSA / MISA formats, synthetic data, batching),
``models`` (EF-LSTM, TFN, LMF, MFN, MAG-BERT, MAG-XLNet), ``training`` (configuration, Trainer,
checkpoints, evaluation and modality drop); module ``metrics`` (the field's regression metrics).
"""

from mdmest.fusion.base import MODALITIES, FusionModel, FusionOutput

__all__ = ["MODALITIES", "FusionModel", "FusionOutput"]
