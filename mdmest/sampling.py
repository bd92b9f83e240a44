"""Samples from the product of the marginals, made by shuffling each view within the batch."""

from __future__ import annotations

import torch

__all__ = ["product_of_marginals", "product_indices", "shifted_product_indices", "SAMPLERS"]


def _sampling_device(
    negatives: int, generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device:
    """Check ``negatives`` and pick the device: the one asked for, else the generator's, else CPU."""
    if negatives < 1:
        raise ValueError(f"negatives must be >= 1, got {negatives}")
    if device is None and generator is not None:
        return generator.device
    return torch.device(device or "cpu")


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
    device = _sampling_device(negatives, generator, device)
    count = (num_views - 1) * negatives
    if device.type == "cpu":
        # On the CPU one randperm per shuffle is O(B) and ~10x faster than sorting random keys.
        perms = torch.stack([torch.randperm(batch_size, generator=generator) for _ in range(count)])
    else:
        # On an accelerator one batched sort of random keys is one launch and no synchronisation.
        keys = torch.rand(count, batch_size, generator=generator, device=device)
        perms = keys.argsort(dim=-1)
    perms = perms.reshape(num_views - 1, negatives * batch_size)
    first = torch.arange(batch_size, device=perms.device).repeat(negatives)
    return torch.cat([first.unsqueeze(0), perms], dim=0)


def shifted_product_indices(
    batch_size: int,
    num_views: int,
    negatives: int = 1,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Row indices of product samples in which no two views ever come from the same joint row.

    A drop-in ``sampler`` for the measures (same contract as :func:`product_indices`). For each
    negative j, the batch is put in a random cyclic order σ_j and view k is read at a distinct
    random offset :math:`s_{j,k}` along it (:math:`s_{j,1} = 0`):

    .. math:: \text{row } i \text{ of product sample } j = \big(x^1_{\sigma_j(i)},
              x^2_{\sigma_j(i + s_{j,2})}, \dots, x^K_{\sigma_j(i + s_{j,K})}\big)
              \pmod B

    A uniform shuffle pairs about one row per view with itself (a fixed point): that row is a
    *joint* sample in the product set, and when the dependency is large its :math:`e^{T}` (about
    :math:`e^{\mathrm{TC}}`) dominates :math:`\log \mathbb{E}_q[e^T]`, which drags DV and NWJ
    estimates down at large total correlation. Distinct offsets rule such rows out for every pair of
    views. Needs ``num_views <= batch_size``.

    Returns
    -------
    torch.Tensor
        int64, shape (K, negatives * B).

    Examples
    --------
    >>> index = shifted_product_indices(5, 3, negatives=2, generator=torch.Generator().manual_seed(0))
    >>> index.shape, bool((index[0] != index[1]).all() and (index[1] != index[2]).all())
    (torch.Size([3, 10]), True)
    """
    device = _sampling_device(negatives, generator, device)
    if num_views > batch_size:
        raise ValueError(
            f"shifted product samples need batch_size >= num_views, got {batch_size} < {num_views}"
        )
    # Distinct offsets per negative: the first K - 1 entries of a random permutation of 1..B-1.
    offset_keys = torch.rand(negatives, batch_size - 1, generator=generator, device=device)
    offsets = offset_keys.argsort(dim=-1)[:, : num_views - 1] + 1
    offsets = torch.cat([torch.zeros_like(offsets[:, :1]), offsets], dim=1)  # (negatives, K)
    order = torch.rand(negatives, batch_size, generator=generator, device=device).argsort(dim=-1)
    positions = torch.arange(batch_size, device=order.device)
    shifted = (positions + offsets.unsqueeze(-1)) % batch_size  # (negatives, K, B)
    index = order.unsqueeze(1).expand(-1, num_views, -1).gather(-1, shifted)
    return index.permute(1, 0, 2).reshape(num_views, negatives * batch_size)


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


#: The samplers by name (for configs and command lines): "shuffle" (:func:`product_indices`, the
#: default) and "shifted" (:func:`shifted_product_indices`).
SAMPLERS = {"shuffle": product_indices, "shifted": shifted_product_indices}
