"""Multimodal sentiment datasets: loaders for the field's pickles, synthetic data, batching.

``load_dataset`` reads the MAG-BERT, MMSA (aligned and unaligned) and MISA/SDK formats with a
restricted unpickler, or generates synthetic data (``"synthetic:mosi"``); ``load_for_training`` also
divides a single-split file and adds text features; ``collate`` and ``make_loader`` build the batch
dict of :class:`mdmest.fusion.base.FusionModel`.

Modules, by concern:

- :mod:`.segments` (:class:`Segment`, :class:`SplitData`) and :mod:`.dataset`
  (:class:`MultimodalDataset`, :func:`split_dataset`): the dataset objects; :mod:`.validation`:
  :class:`DatasetFormatError` and the checks of file content;
- :mod:`.mag_bert`, :mod:`.mmsa`, :mod:`.misa`: one file format each (detect, read, write), with
  :mod:`.formats` dispatching over them (:data:`FORMATS`, :func:`write_dataset`) and :mod:`.loading`
  the entry points (:func:`load_dataset`, :func:`load_for_training`);
- :mod:`.synthetic` (:func:`make_synthetic`, :func:`write_synthetic`), :mod:`.batching`
  (:func:`collate`, :func:`make_loader`), :mod:`.safe_pickle` (restricted unpickling, atomic
  writes), :mod:`.text` (MiniLM word features).
"""

from mdmest.fusion.data.batching import collate, make_loader
from mdmest.fusion.data.dataset import MultimodalDataset, split_dataset
from mdmest.fusion.data.formats import FORMATS, write_dataset
from mdmest.fusion.data.loading import load_dataset, load_for_training
from mdmest.fusion.data.safe_pickle import PickleReadError, UnsafePickleError
from mdmest.fusion.data.segments import Segment, SplitData
from mdmest.fusion.data.synthetic import make_synthetic, write_synthetic
from mdmest.fusion.data.validation import DatasetFormatError

__all__ = [
    "FORMATS",
    "DatasetFormatError",
    "MultimodalDataset",
    "PickleReadError",
    "Segment",
    "SplitData",
    "UnsafePickleError",
    "collate",
    "load_dataset",
    "load_for_training",
    "make_loader",
    "make_synthetic",
    "split_dataset",
    "write_dataset",
    "write_synthetic",
]
