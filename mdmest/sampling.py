"""Samples from the product of the marginals, made by shuffling each view within the batch.

A sampler draws row indices and nothing more: :func:`product_indices` and
:func:`shifted_product_indices` within one batch, :class:`CrossRankSampler` within the global batch
of a process group (the measure then scores the rows, :mod:`mdmest.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

from mdmest._collective import is_distributed

# CrossRankSampler is public through mdmest.distributed.
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


class CrossRankSampler:
    """A sampler that draws product rows from the global batch of a process group.

    It fills a measure's ``sampler`` slot (``TotalCorrelation(dims, sampler=CrossRankSampler())``,
    or ``distributed=True``). It draws indices like its ``base`` (the contract of
    :func:`product_indices`); when a process group with more than one rank is initialised, the
    measure gathers the views of every rank, has this sampler draw the indices of the global batch
    (with a generator seeded alike on every rank), scores its share of them and gathers the scores:
    the bound is that of the global batch (see :mod:`mdmest.distributed`).

    Parameters
    ----------
    base : str or callable
        How product rows are drawn from the global batch: "shuffle" (default), "shifted", or any
        sampler with the contract of :func:`product_indices`.
    group : ProcessGroup, optional
        The ranks that share a batch (default: the default group).
    seed : int, optional
        Seed of the generator that draws the global permutation, identical on every rank. By
        default rank 0 draws one from torch's global generator and broadcasts it on first use.
        A generator the measure holds (``measure.generator``, or ``estimate(generator=...)``) takes
        precedence; it must then be seeded identically on every rank.
    """

    def __init__(
        self,
        base: str | Callable[..., torch.Tensor] | None = None,
        *,
        group=None,
        seed: int | None = None,
    ) -> None:
        if isinstance(base, str):
            if base not in SAMPLERS:
                raise ValueError(
                    f"base must be one of {tuple(SAMPLERS)} or a callable, got {base!r}"
                )
            base = SAMPLERS[base]
        if isinstance(base, CrossRankSampler):
            base = base.base
        self.base = base if base is not None else product_indices
        if group is not None and not isinstance(group, dist.ProcessGroup):
            raise TypeError(f"group must be a torch.distributed ProcessGroup, got {group!r}")
        self.group = group
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def __repr__(self) -> str:
        name = getattr(self.base, "__name__", type(self.base).__name__)
        return f"CrossRankSampler(base={name}, seed={self.seed})"

    def __getstate__(self):
        # Generators are rebuilt from the seed; a process group does not pickle (the default
        # group is used after unpickling).
        return dict(self.__dict__, _generators={}, group=None)

    def __deepcopy__(self, memo):
        copy = CrossRankSampler(self.base, group=self.group, seed=self.seed)
        memo[id(self)] = copy
        return copy

    def __call__(
        self,
        batch_size: int,
        num_views: int,
        negatives: int = 1,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        return self.base(batch_size, num_views, negatives, generator=generator, device=device)

    def active(self) -> bool:
        """Whether a group with more than one rank is initialised (else this is ``base``)."""
        return is_distributed(self.group)

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator of the global permutation on ``device``, seeded alike on every rank."""
        key = str(device)
        if key not in self._generators:
            if self.seed is None:
                seed = [
                    int(torch.randint(0, 2**62, ())) if dist.get_rank(self.group) == 0 else None
                ]
                dist.broadcast_object_list(seed, group=self.group, group_src=0)
                self.seed = seed[0]
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]
