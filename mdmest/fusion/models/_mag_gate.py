"""The Multimodal Adaptation Gate of MAG-BERT and MAG-XLNet (Rahman et al., 2020)."""

from __future__ import annotations

import torch
from torch import nn


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


__all__ = ["MultimodalAdaptationGate"]
