"""Samples from the product of the marginals, made by shuffling each view within the batch."""

from __future__ import annotations

import torch

__all__ = ["product_of_marginals", "product_indices"]


def product_indices(
    batch_size: int,
    num_views: int,
    negatives: int = 1,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Row indices of ``negatives`` product samples for each of ``num_views`` views.

    Returns an int64 tensor of shape (K, negatives * B): entry ``[k, j * B + i]`` is the row of view k
    used in row i of the j-th product sample. View 1 keeps its order (π_1 is the identity); every other
    view gets its own independent uniform permutation per negative. Everything runs on ``device``,
    with no host synchronisation.
    """
    if negatives < 1:
        raise ValueError(f"negatives must be >= 1, got {negatives}")
    device = generator.device if generator is not None and device is None else device
    keys = torch.rand(num_views - 1, negatives, batch_size, generator=generator, device=device)
    perms = keys.argsort(dim=-1).reshape(num_views - 1, negatives * batch_size)
    first = torch.arange(batch_size, device=perms.device).repeat(negatives)
    return torch.cat([first.unsqueeze(0), perms], dim=0)


def product_of_marginals(
    *views: torch.Tensor, negatives: int = 1, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, ...]:
    r"""Draw rows from the product of the marginals by shuffling each view within the batch.

    Row i of the j-th product sample is :math:`(x^1_i, x^2_{\pi_{j,2}(i)}, \dots, x^K_{\pi_{j,K}(i)})`
    with independent uniform permutations :math:`\pi_{j,k}`.

    Parameters
    ----------
    *views : torch.Tensor
        K tensors of shape (B, d_k) on one device.
    negatives : int
        Product rows per joint row; the result has ``negatives * B`` rows.
    generator : torch.Generator, optional
        Source of randomness (on the views' device) for reproducible shuffles.

    Returns
    -------
    tuple of torch.Tensor
        K tensors of shape (negatives * B, d_k).

    Examples
    --------
    >>> x, y = torch.arange(4.0).reshape(4, 1), torch.arange(4.0).reshape(4, 1)
    >>> px, py = product_of_marginals(x, y, negatives=2)
    >>> px.shape, sorted(py[:4, 0].tolist())
    (torch.Size([8, 1]), [0.0, 1.0, 2.0, 3.0])
    """
    if len(views) < 2:
        raise ValueError(f"product_of_marginals needs at least 2 views, got {len(views)}")
    index = product_indices(
        views[0].shape[0], len(views), negatives, generator=generator, device=views[0].device
    )
    return tuple(v.index_select(0, idx) for v, idx in zip(views, index))
