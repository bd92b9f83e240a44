"""Multimodal sentiment models trained with a dependency penalty (extra ``fusion``).

Submodules: ``data`` (loaders, synthetic data, collate), ``metrics`` (the field's regression metrics),
``models`` (EF-LSTM, TFN, LMF, MFN), ``mag`` (MAG-BERT, MAG-XLNet), ``trainer``.
"""

from mdmest.fusion.base import MODALITIES, FusionModel, FusionOutput

__all__ = ["MODALITIES", "FusionModel", "FusionOutput"]
