"""Tests of MAG-BERT and MAG-XLNet: the gate's math, word-piece alignment, hooks, loading, training."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from mdmest.fusion.base import FusionOutput  # noqa: E402
from mdmest.fusion.models import build_model, default_training, model_class  # noqa: E402
from mdmest.fusion.models._alignment import align_to_wordpieces  # noqa: E402
from mdmest.fusion.models.mag import (  # noqa: E402
    DEFAULT_TRAINING,
    MAGBert,
    MAGXLNet,
    MultimodalAdaptationGate,
    default_backbone_path,
)

MOSI_DEV = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mosi" / "dev_misa_format.pkl"
)


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(
        default_backbone_path(), local_files_only=True
    )


@pytest.fixture(scope="module")
def minilm() -> MAGBert:
    return MAGBert.from_pretrained(dropout=0.1)


def tiny_xlnet(tokenizer, **kwargs) -> MAGXLNet:
    torch.manual_seed(0)
    config = transformers.XLNetConfig(
        vocab_size=len(tokenizer), d_model=32, n_layer=3, n_head=2, d_inner=64, dropout=0.0
    )
    return MAGXLNet.from_config(config, tokenizer, visual_dim=5, acoustic_dim=3, **kwargs)


def tiny_bert(tokenizer, **kwargs) -> MAGBert:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return MAGBert.from_config(config, tokenizer, visual_dim=5, acoustic_dim=3, **kwargs)


def word_batch(words: list[list[str]], visual_dim: int = 5, acoustic_dim: int = 3) -> dict:
    lengths = torch.tensor([len(w) for w in words])
    longest = int(lengths.max())
    generator = torch.Generator().manual_seed(1)
    return {
        "words": words,
        "audio": torch.randn(len(words), longest, acoustic_dim, generator=generator),
        "video": torch.randn(len(words), longest, visual_dim, generator=generator),
        "audio_lengths": lengths,
        "video_lengths": lengths,
        "text_lengths": lengths,
        "label": torch.linspace(-2, 2, len(words)),
        "id": [f"seg{i}" for i in range(len(words))],
    }


WORDS = [["so", "unbelievably", "good"], ["philly", "bad"]]


# -- the gate -------------------------------------------------------------------------------------


def hand_gate(beta_shift: float = 1.0, acoustic_open: bool = True) -> MultimodalAdaptationGate:
    """hidden 3, one visual and one acoustic feature; W_v v = [3, 0, 0], W_a a = [0, 4, 0] at v = a = 1.

    The gates' weights are zero, so w_v = ReLU(bias) and w_a = ReLU(bias).
    """
    gate = MultimodalAdaptationGate(3, visual_dim=1, acoustic_dim=1, beta_shift=beta_shift)
    with torch.no_grad():
        for linear in (gate.visual_gate, gate.acoustic_gate):
            linear.weight.zero_()
        gate.visual_gate.bias.fill_(1.0)
        gate.acoustic_gate.bias.fill_(1.0 if acoustic_open else -1.0)
        gate.visual_projection.weight.copy_(torch.tensor([[3.0], [0.0], [0.0]]))
        gate.acoustic_projection.weight.copy_(torch.tensor([[0.0], [4.0], [0.0]]))
        gate.visual_projection.bias.zero_()
        gate.acoustic_projection.bias.zero_()
    return gate.eval()


HIDDEN = torch.tensor([[0.0, 0.0, 2.0]])
ONE = torch.ones(1, 1)


def test_gate_scales_shift_by_norm_ratio():
    # H = [3, 4, 0], |H| = 5, |h| = 2: alpha = 2/5, pre-norm = [1.2, 1.6, 2.0].
    out = hand_gate()(HIDDEN, ONE, ONE)
    # LayerNorm of [1.2, 1.6, 2.0]: mean 1.6, variance 0.32/3.
    expected = torch.tensor([[-0.4, 0.0, 0.4]]) / (0.32 / 3 + 1e-5) ** 0.5
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_gate_alpha_clipped_at_one():
    # beta 10: 2/5 * 10 = 4 > 1, so alpha = 1 and pre-norm = h + H = [3, 4, 2].
    out = hand_gate(beta_shift=10.0)(HIDDEN, ONE, ONE)
    expected = F.layer_norm(torch.tensor([[3.0, 4.0, 2.0]]), (3,))
    torch.testing.assert_close(out, expected)


def test_gate_relu_closes_a_modality():
    # w_a = ReLU(-1) = 0: H = [3, 0, 0], alpha = 2/3, pre-norm = [2, 0, 2].
    out = hand_gate(acoustic_open=False)(HIDDEN, ONE, ONE)
    expected = F.layer_norm(torch.tensor([[2.0, 0.0, 2.0]]), (3,))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_gate_zero_shift_keeps_hidden_and_finite_gradients():
    gate = hand_gate()
    with torch.no_grad():
        gate.visual_projection.weight.zero_()
        gate.acoustic_projection.weight.zero_()
    hidden = HIDDEN.clone().requires_grad_(True)
    out = gate(hidden, ONE, ONE)
    torch.testing.assert_close(out, F.layer_norm(HIDDEN, (3,)))
    out.pow(2).sum().backward()
    assert torch.isfinite(hidden.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in gate.parameters() if p.grad is not None)


def test_gate_shape_and_bad_arguments():
    gate = MultimodalAdaptationGate(8, 3, 2).eval()
    assert gate(torch.randn(2, 4, 8), torch.randn(2, 4, 3), torch.randn(2, 4, 2)).shape == (2, 4, 8)
    with pytest.raises(ValueError, match="beta_shift"):
        MultimodalAdaptationGate(8, 3, 2, beta_shift=0.0)
    with pytest.raises(ValueError, match="dropout"):
        MultimodalAdaptationGate(8, 3, 2, dropout=1.0)
    with pytest.raises(ValueError, match="visual_dim"):
        MultimodalAdaptationGate(8, 0, 2)


# -- alignment ------------------------------------------------------------------------------------


def test_alignment_bert_repeats_rows_per_piece(tokenizer):
    batch = word_batch(WORDS)
    aligned = align_to_wordpieces(WORDS, batch["audio"], batch["video"], tokenizer)
    pieces = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in WORDS[0]]
    assert [len(p) for p in pieces] == [1, 5, 1]  # un ##bel ##ie ##va ##bly
    expected_ids = [tokenizer.cls_token_id, *sum(pieces, []), tokenizer.sep_token_id]
    assert aligned.input_ids[0].tolist() == expected_ids
    rows = [0, 1, 1, 1, 1, 1, 2]
    for features, aligned_features in (
        (batch["audio"], aligned.audio),
        (batch["video"], aligned.video),
    ):
        assert torch.equal(aligned_features[0, 1:8], features[0, rows])
        assert not aligned_features[0, 0].any() and not aligned_features[0, 8].any()
    # Second segment: [CLS] phil ##ly bad [SEP], then right padding.
    assert aligned.input_ids.shape == (2, 9)
    assert aligned.attention_mask[1].tolist() == [1] * 5 + [0] * 4
    assert aligned.input_ids[1, 4] == tokenizer.sep_token_id
    assert (aligned.input_ids[1, 5:] == tokenizer.pad_token_id).all()
    assert torch.equal(aligned.audio[1, 1:4], batch["audio"][1, [0, 0, 1]])
    assert not aligned.audio[1, 4:].any() and not aligned.video[1, 4:].any()
    assert aligned.word_mask[1].tolist() == [False, True, True, True] + [False] * 5
    assert not aligned.token_type_ids.any()


def test_alignment_xlnet_layout(tokenizer):
    batch = word_batch(WORDS)
    aligned = align_to_wordpieces(
        WORDS, batch["audio"], batch["video"], tokenizer, model_type="xlnet"
    )
    sep, cls, pad = tokenizer.sep_token_id, tokenizer.cls_token_id, tokenizer.pad_token_id
    assert aligned.input_ids[0, -2:].tolist() == [sep, cls]
    assert aligned.input_ids[1, :4].tolist() == [pad] * 4
    assert aligned.input_ids[1, -2:].tolist() == [sep, cls]
    assert aligned.attention_mask[1].tolist() == [0] * 4 + [1] * 5
    assert aligned.token_type_ids[1].tolist() == [3] * 4 + [0, 0, 0, 0, 2]
    assert torch.equal(aligned.audio[0, :7], batch["audio"][0, [0, 1, 1, 1, 1, 1, 2]])
    assert torch.equal(aligned.video[1, 4:7], batch["video"][1, [0, 0, 1]])
    assert not aligned.audio[1, :4].any() and not aligned.audio[:, -2:].any()


@pytest.mark.parametrize("model_type", ["bert", "xlnet"])
def test_alignment_truncates_including_special_tokens(tokenizer, model_type):
    batch = word_batch(WORDS)
    aligned = align_to_wordpieces(
        WORDS, batch["audio"], batch["video"], tokenizer, max_length=5, model_type=model_type
    )
    assert aligned.input_ids.shape == (2, 5)
    assert aligned.word_mask.sum(dim=1).tolist() == [3, 3]
    first = 1 if model_type == "bert" else 0
    # "so", then the first two pieces of "unbelievably".
    assert torch.equal(aligned.audio[0, first : first + 3], batch["audio"][0, [0, 1, 1]])


def test_alignment_bad_input(tokenizer):
    batch = word_batch(WORDS)
    with pytest.raises(ValueError, match="model_type"):
        align_to_wordpieces(WORDS, batch["audio"], batch["video"], tokenizer, model_type="gpt")
    with pytest.raises(ValueError, match="word-aligned"):
        align_to_wordpieces(WORDS, batch["audio"][:, :2], batch["video"], tokenizer)
    with pytest.raises(ValueError, match="max_length"):
        align_to_wordpieces(WORDS, batch["audio"], batch["video"], tokenizer, max_length=2)


# -- models on tiny random backbones --------------------------------------------------------------


def capture_layer_input(layer: torch.nn.Module, store: list) -> None:
    """Record the hidden states a layer receives (registered after the gate, so it sees its output)."""

    def hook(module, args, kwargs):
        store.append(args[0] if args else next(iter(kwargs.values())))

    layer.register_forward_pre_hook(hook, with_kwargs=True)


def test_bert_gate_sits_on_the_embedding_output(tokenizer):
    model = tiny_bert(tokenizer).eval()
    embeddings, layer_input = [], []
    model.backbone.embeddings.register_forward_hook(lambda m, a, out: embeddings.append(out))
    capture_layer_input(model.backbone.encoder.layer[0], layer_input)
    batch = word_batch(WORDS)
    model(batch)
    aligned = align_to_wordpieces(WORDS, batch["audio"], batch["video"], tokenizer)
    expected = model.gate(embeddings[0], aligned.video, aligned.audio)
    torch.testing.assert_close(layer_input[0], expected)


def test_xlnet_gate_sits_before_layer_one(tokenizer):
    model = tiny_xlnet(tokenizer).eval()
    first_output, second_input = [], []
    model.backbone.layer[0].register_forward_hook(lambda m, a, out: first_output.append(out[0]))
    capture_layer_input(model.backbone.layer[1], second_input)
    batch = word_batch(WORDS)
    model(batch)
    aligned = align_to_wordpieces(
        WORDS, batch["audio"], batch["video"], tokenizer, model_type="xlnet"
    )
    # XLNet's layers run sequence-first: (T, B, hidden).
    expected = model.gate(
        first_output[0], aligned.video.transpose(0, 1), aligned.audio.transpose(0, 1)
    )
    torch.testing.assert_close(second_input[0], expected)
    # Layer 0 does not see the audio: changing it leaves layer 0's output unchanged.
    model({**batch, "audio": batch["audio"] + 1.0})
    torch.testing.assert_close(first_output[1], first_output[0])
    assert not torch.allclose(second_input[1], second_input[0])


@pytest.mark.parametrize("builder", [tiny_bert, tiny_xlnet])
def test_forward_backward_shapes_and_bounds(tokenizer, builder):
    model = builder(tokenizer)
    batch = word_batch(WORDS + [["ok"]])
    out = model(batch)
    assert isinstance(out, FusionOutput)
    assert out.prediction.shape == (3,)
    assert tuple(z.shape[1] for z in out.representations) == model.representation_dims == (32,) * 3
    assert out.z_text.abs().max() <= 1.0
    loss = F.mse_loss(out.prediction, batch["label"]) + sum(z.pow(2).mean() for z in out[1:])
    loss.backward()
    gate_grads = [p.grad for p in model.gate.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gate_grads)
    assert model.gate.acoustic_projection.weight.grad.abs().sum() > 0


def test_text_drop_pads_word_pieces_and_keeps_audio_video(tokenizer):
    model = tiny_bert(tokenizer).eval()
    seen = []
    model.backbone.register_forward_pre_hook(
        lambda m, a, kw: seen.append((kw["input_ids"], kw["attention_mask"])), with_kwargs=True
    )
    batch = word_batch(WORDS)
    full = model(batch)
    dropped = model({**batch, "drop": ["text"]})
    ids, mask = seen[1]
    assert ids[0].tolist() == [tokenizer.cls_token_id] + [tokenizer.pad_token_id] * 7 + [
        tokenizer.sep_token_id
    ]
    assert torch.equal(mask, seen[0][1])
    assert not torch.allclose(dropped.prediction, full.prediction)
    # The audio still reaches the prediction when text is dropped.
    louder = model({**batch, "drop": ["text"], "audio": batch["audio"] * 3})
    assert not torch.allclose(louder.prediction, dropped.prediction)
    silent = model({**batch, "drop": ("text", "audio", "video")})
    zeros = model(
        {**batch, "drop": ["text"], "audio": 0 * batch["audio"], "video": 0 * batch["video"]}
    )
    torch.testing.assert_close(silent.prediction, zeros.prediction)
    with pytest.raises(ValueError, match="drop"):
        model({**batch, "drop": ["speech"]})


def test_forward_rejects_rows_that_do_not_match_words(tokenizer):
    model = tiny_bert(tokenizer)
    batch = word_batch(WORDS)
    batch["audio_lengths"] = torch.tensor([3, 3])
    with pytest.raises(ValueError, match="seg1: 2 words but audio_lengths is 3"):
        model(batch)


def test_forward_needs_words(tokenizer):
    model = tiny_bert(tokenizer)
    batch = word_batch(WORDS)
    with pytest.raises(ValueError, match="words"):
        model({**batch, "words": [WORDS[0], None]})


def test_backbone_alone_refuses_to_skip_the_gate(tokenizer):
    model = tiny_bert(tokenizer)
    with pytest.raises(RuntimeError, match="batch dict"):
        model.backbone(input_ids=torch.tensor([[101, 102]]))


def test_param_groups_exempt_bias_and_layernorm(tokenizer):
    model = tiny_xlnet(tokenizer)
    decay, no_decay = model.param_groups(0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    grouped = [id(p) for p in decay["params"] + no_decay["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    exempt = {id(p) for p in no_decay["params"]}
    assert id(model.gate.layer_norm.weight) in exempt
    assert id(model.gate.visual_gate.bias) in exempt
    assert id(model.backbone.layer[0].ff.layer_norm.weight) in exempt
    assert id(model.gate.visual_gate.weight) not in exempt
    torch.optim.AdamW(model.param_groups(0.01), lr=1e-5)


def test_deepcopy_runs_its_own_gate(tokenizer):
    model = tiny_xlnet(tokenizer).eval()
    clone = copy.deepcopy(model)
    batch = word_batch(WORDS)
    torch.testing.assert_close(clone(batch).prediction, model(batch).prediction)
    with torch.no_grad():
        clone.gate.acoustic_projection.weight.mul_(5.0)
    assert not torch.allclose(clone(batch).prediction, model(batch).prediction)


def test_xlnet_needs_two_layers_and_matching_config(tokenizer):
    config = transformers.XLNetConfig(vocab_size=len(tokenizer), d_model=16, n_layer=1, n_head=2)
    with pytest.raises(ValueError, match="before layer 1"):
        MAGXLNet.from_config(config, tokenizer)
    with pytest.raises(TypeError, match="XLNetConfig"):
        MAGXLNet.from_config(transformers.BertConfig(), tokenizer)
    with pytest.raises(ValueError, match="vocab_size"):
        MAGXLNet.from_config(transformers.XLNetConfig(vocab_size=100, n_layer=2), tokenizer)


# -- loading and builders -------------------------------------------------------------------------


def test_from_pretrained_says_where_it_looked(tmp_path, tokenizer):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MAGBert.from_pretrained(missing)
    tiny_bert(tokenizer).backbone.config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no weights in the checkpoint folder"):
        MAGBert.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="needs a 'xlnet' checkpoint"):
        MAGXLNet.from_pretrained(default_backbone_path())
    with pytest.raises(ValueError, match="--backbone"):
        MAGXLNet.from_preset(None, 74, 47)


def test_xlnet_round_trip_through_a_local_folder(tmp_path, tokenizer):
    model = tiny_xlnet(tokenizer)
    model.backbone.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = MAGXLNet.from_preset(None, 3, 5, backbone=tmp_path, dataset="mosei")
    assert loaded.gate.dropout.p == DEFAULT_TRAINING["mosei"]["dropout"]
    for name, tensor in model.backbone.state_dict().items():
        torch.testing.assert_close(loaded.backbone.state_dict()[name], tensor)
    assert loaded.eval()(word_batch(WORDS)).prediction.shape == (2,)


def test_build_mag_bert_presets():
    model = MAGBert.from_preset(768, 74, 47)
    assert model.gate.dropout.p == DEFAULT_TRAINING["mosi"]["dropout"] == 0.3
    assert model.representation_dims == (384, 384, 384)
    assert model.gate.visual_projection.in_features == 47
    assert model.gate.acoustic_projection.in_features == 74
    assert MAGBert.from_preset(None, 74, 47, beta_shift=0.5).gate.beta_shift == 0.5
    with pytest.raises(ValueError, match="dataset"):
        MAGBert.from_preset(None, 74, 47, dataset="iemocap")
    with pytest.raises(TypeError):
        MAGBert.from_preset(None, 74, 47, hidden_dim=12)


def test_from_preset_and_the_registry(tmp_path, tokenizer):
    assert model_class("mag_bert") is MAGBert and model_class("mag_xlnet") is MAGXLNet
    model = build_model("mag_bert", 768, 74, 47, dataset="mosei", max_length=20)
    assert type(model) is MAGBert
    assert model.gate.dropout.p == DEFAULT_TRAINING["mosei"]["dropout"] == 0.2
    assert model.max_length == 20 and model.gate.beta_shift == 1.0
    assert model.gate.visual_projection.in_features == 47
    tiny = tiny_xlnet(tokenizer)
    tiny.backbone.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = MAGXLNet.from_preset(None, 3, 5, backbone=tmp_path, beta_shift=0.5)
    assert loaded.gate.beta_shift == 0.5 and loaded.gate.dropout.p == 0.3
    with pytest.raises(ValueError, match="--backbone"):
        MAGXLNet.from_preset(None, 74, 47)
    with pytest.raises(ValueError, match="unknown dataset 'iemocap'; valid values are"):
        MAGBert.from_preset(None, 74, 47, dataset="iemocap")
    for name in ("mag_bert", "mag_xlnet"):
        settings = default_training(name, "mosi")
        assert settings["task_loss"] == "mse" and settings["lr"] == 2e-5
        assert {key: settings[key] for key in MAGBert.PRESETS["mosi"]} == MAGBert.PRESETS["mosi"]


def test_building_a_model_imports_transformers():
    code = (
        "import sys; from mdmest.fusion.models import MAGBert; "
        "assert 'transformers' not in sys.modules; "
        "MAGBert.from_preset(None, 74, 47); assert 'transformers' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the pretrained MiniLM on real CMU-MOSI segments -----------------------------------------------


def test_minilm_forward_backward(minilm):
    batch = word_batch([["unbelievably", "good", "movie"], ["hesitation"]], 47, 74)
    minilm.train()
    out = minilm(batch)
    assert out.prediction.shape == (2,)
    F.mse_loss(out.prediction, batch["label"]).backward()
    assert minilm.gate.visual_gate.weight.grad is not None
    assert minilm.backbone.encoder.layer[0].attention.self.query.weight.grad is not None
    minilm.zero_grad()


@pytest.mark.slow
def test_minilm_training_on_real_mosi_lowers_the_loss():
    data = pytest.importorskip("mdmest.fusion.data")
    if not MOSI_DEV.is_file():
        pytest.skip(f"real CMU-MOSI segments not found at {MOSI_DEV}")
    split = data.load_dataset(MOSI_DEV)["all"]
    batches = [data.collate([split[i] for i in range(start, start + 32)]) for start in (0, 32)]
    torch.manual_seed(0)
    model = MAGBert.from_pretrained(dropout=0.1)
    optimizer = torch.optim.AdamW(model.param_groups(0.01), lr=1e-4)

    def evaluation_loss() -> float:
        model.eval()
        with torch.no_grad():
            return sum(F.mse_loss(model(b).prediction, b["label"]).item() for b in batches) / 2

    before = evaluation_loss()
    model.train()
    for _ in range(3):
        for batch in batches:
            loss = F.mse_loss(model(batch).prediction, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert evaluation_loss() < 0.8 * before
