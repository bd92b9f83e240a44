"""Memory Fusion Network (Zadeh et al., 2018a): per-modality LSTMs joined by a gated memory."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mdmest.fusion.base import FusionOutput
from mdmest.fusion.models._common import (
    PresetFusionModel,
    aligned_inputs,
    check_dropouts,
    check_sizes,
    two_layer_mlp,
)

__all__ = ["MFN"]


class MFN(PresetFusionModel):
    r"""Memory Fusion Network on word-aligned sequences.

    One LSTM cell per modality. At step s, the concatenated cell states of steps s−1 and s,
    :math:`c^{[s-1,s]}`, pass through the Delta-memory attention
    :math:`\tilde c = \mathrm{softmax}(D_a(c^{[s-1,s]})) \odot c^{[s-1,s]}`; the multi-view gated
    memory is updated as
    :math:`u_s = \gamma_1 \odot u_{s-1} + \gamma_2 \odot \tanh(D_u(\tilde c))`, with
    :math:`\gamma_{1,2} = \sigma(D_{\gamma_{1,2}}([\tilde c; u_{s-1}]))`. The output network reads
    the last hidden states and the memory: :math:`\hat y = D_o([h^t; h^a; h^v; u])`. Each D is
    Linear → ReLU → Dropout → Linear.

    Parameters
    ----------
    text_dim, audio_dim, video_dim : int
        Input feature sizes.
    hidden_dims : tuple of int, default (256, 32, 256)
        LSTM sizes for (text, audio, video); also the sizes of z_text, z_audio, z_video.
    memory_dim : int, default 400
        Size of the gated memory u.
    attention_mlp, memory_mlp, gamma1_mlp, gamma2_mlp, output_mlp : tuple (int, float)
        (hidden width, dropout) of :math:`D_a, D_u, D_{\gamma_1}, D_{\gamma_2}, D_o`; defaults
        (32, 0.2), (64, 0.0), (256, 0.7), (32, 0.5), (128, 0.0).

    Notes
    -----
    Representations: each modality's LSTM hidden state at its last valid step, in (−1, 1).
    Steps beyond a sequence's length leave every state unchanged, so padding does not matter.
    Raises ``ValueError`` on unaligned input. MOSEI preset (MMSA): hidden (128, 32, 128),
    memory 128, MLPs (128, 0.2), (128, 0.5), (256, 0.7), (256, 0.0), (128, 0.5).

    References
    ----------
    Zadeh et al., "Memory Fusion Network for Multi-view Sequential Learning", AAAI 2018.
    """

    #: LSTM cell hidden states, in [-1, 1].
    bounded_representations = True
    PRESETS = {
        "mosi": {},
        "mosei": {
            "hidden_dims": (128, 32, 128),
            "memory_dim": 128,
            "attention_mlp": (128, 0.2),
            "memory_mlp": (128, 0.5),
            "gamma1_mlp": (256, 0.7),
            "gamma2_mlp": (256, 0.0),
            "output_mlp": (128, 0.5),
        },
    }
    DEFAULT_TRAINING = {
        "mosi": {"batch_size": 128, "lr": 2e-3, "weight_decay": 0.0, "task_loss": "l1"},
        "mosei": {"batch_size": 64, "lr": 5e-4, "weight_decay": 1e-4, "task_loss": "l1"},
    }

    def __init__(
        self,
        text_dim: int,
        audio_dim: int,
        video_dim: int,
        *,
        hidden_dims: tuple[int, int, int] = (256, 32, 256),
        memory_dim: int = 400,
        attention_mlp: tuple[int, float] = (32, 0.2),
        memory_mlp: tuple[int, float] = (64, 0.0),
        gamma1_mlp: tuple[int, float] = (256, 0.7),
        gamma2_mlp: tuple[int, float] = (32, 0.5),
        output_mlp: tuple[int, float] = (128, 0.0),
    ) -> None:
        super().__init__()
        hidden_dims = tuple(hidden_dims)
        if len(hidden_dims) != 3:
            raise ValueError(
                f"hidden_dims should hold 3 sizes (text, audio, video), got {hidden_dims}"
            )
        mlps = {
            "attention_mlp": attention_mlp,
            "memory_mlp": memory_mlp,
            "gamma1_mlp": gamma1_mlp,
            "gamma2_mlp": gamma2_mlp,
            "output_mlp": output_mlp,
        }
        for name, config in mlps.items():
            if len(config) != 2:
                raise ValueError(f"{name} should be (hidden width, dropout), got {config}")
            check_sizes(**{name: int(config[0])})
            check_dropouts(**{name: float(config[1])})
        check_sizes(
            text_dim=text_dim,
            audio_dim=audio_dim,
            video_dim=video_dim,
            hidden_dims=hidden_dims,
            memory_dim=memory_dim,
        )
        self.input_dims = (text_dim, audio_dim, video_dim)
        self.cells = nn.ModuleList(
            nn.LSTMCell(d_in, d_hidden)
            for d_in, d_hidden in zip(self.input_dims, hidden_dims, strict=True)
        )
        states = sum(hidden_dims)
        window = 2 * states  # cell states of two consecutive steps
        self.attention = two_layer_mlp(window, attention_mlp[0], window, attention_mlp[1])
        self.memory_update = two_layer_mlp(window, memory_mlp[0], memory_dim, memory_mlp[1])
        self.gamma1 = two_layer_mlp(window + memory_dim, gamma1_mlp[0], memory_dim, gamma1_mlp[1])
        self.gamma2 = two_layer_mlp(window + memory_dim, gamma2_mlp[0], memory_dim, gamma2_mlp[1])
        self.output = two_layer_mlp(states + memory_dim, output_mlp[0], 1, output_mlp[1])
        self.memory_dim = memory_dim
        self.representation_dims = hidden_dims

    def forward(self, batch: dict) -> FusionOutput:
        """Predict (B,) and return the last valid LSTM hidden states as representations."""
        features, lengths = aligned_inputs(batch, self.input_dims, "MFN")
        batch_size = features[0].shape[0]
        reference = features[0]
        hidden = [reference.new_zeros(batch_size, cell.hidden_size) for cell in self.cells]
        cell_states = [reference.new_zeros(batch_size, cell.hidden_size) for cell in self.cells]
        memory = reference.new_zeros(batch_size, self.memory_dim)

        shortest = int(lengths.min())
        for step in range(int(lengths.max())):
            new_hidden, new_cells = zip(
                *(
                    cell(x[:, step], (h, c))
                    for cell, x, h, c in zip(self.cells, features, hidden, cell_states, strict=True)
                ),
                strict=True,
            )
            window = torch.cat(cell_states + list(new_cells), dim=1)
            attended = F.softmax(self.attention(window), dim=1) * window
            proposal = torch.tanh(self.memory_update(attended))
            gate_input = torch.cat([attended, memory], dim=1)
            new_memory = (
                torch.sigmoid(self.gamma1(gate_input)) * memory
                + torch.sigmoid(self.gamma2(gate_input)) * proposal
            )
            if step >= shortest:
                # Finished sequences keep their state, which ends as the state at the last valid step.
                active = (lengths > step).unsqueeze(1)
                new_memory = torch.where(active, new_memory, memory)
                new_hidden = [
                    torch.where(active, new, old)
                    for new, old in zip(new_hidden, hidden, strict=True)
                ]
                new_cells = [
                    torch.where(active, new, old)
                    for new, old in zip(new_cells, cell_states, strict=True)
                ]
            memory, hidden, cell_states = new_memory, list(new_hidden), list(new_cells)

        prediction = self.output(torch.cat(hidden + [memory], dim=1)).squeeze(-1)
        return FusionOutput(prediction, *hidden)
