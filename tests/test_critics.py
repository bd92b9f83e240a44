"""MLPCritic's residual and LayerNorm options, the Gaussian-mixture and offset critics, and the
critic of estimate's recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mdmest
from mdmest.critics import MLPCritic
from mdmest.tasks import gaussian_task_with_tc


def _rows(n=32, width=6, seed=0):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


def test_default_layers_unchanged():
    critic = MLPCritic(6)
    kinds = [type(layer) for layer in critic.net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert critic(_rows()).shape == (32,)


def test_residual_block_with_zero_weights_is_the_identity():
    torch.manual_seed(0)
    critic = MLPCritic(6, hidden=(16, 16, 16), activation="gelu", residual=True)
    blocks = [m for m in critic.net if hasattr(m, "linear")]
    assert len(blocks) == 2  # every hidden layer after the first
    x = _rows()
    with torch.no_grad():
        for block in blocks:
            block.linear.weight.zero_()
            block.linear.bias.zero_()
        # GELU(0) = 0, so each block adds nothing: first layer, activation, output layer.
        expected = critic.net[-1](critic.net[1](critic.net[0](x))).squeeze(-1)
        assert torch.allclose(critic(x), expected, atol=1e-6)


def test_layer_norm_makes_the_first_layer_scale_invariant():
    torch.manual_seed(0)
    critic = MLPCritic(6, hidden=(32, 32), activation="gelu", layer_norm=True)
    assert sum(isinstance(m, nn.LayerNorm) for m in critic.net) == 2
    x = _rows()
    before = critic(x).detach()
    with torch.no_grad():
        critic.net[0].weight.mul_(7.0)
        critic.net[0].bias.mul_(7.0)
    assert torch.allclose(critic(x), before, atol=1e-4)


def test_pre_norm_residual_ends_with_a_layer_norm():
    critic = MLPCritic(6, hidden=(16, 16), residual=True, layer_norm=True)
    assert isinstance(critic.net[-2], nn.LayerNorm)
    assert isinstance(critic.net[2].norm, nn.LayerNorm)
    assert critic(_rows()).shape == (32,)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="equal hidden widths"):
        MLPCritic(6, hidden=(32, 16), residual=True)
    with pytest.raises(ValueError, match="spectral_norm"):
        MLPCritic(6, layer_norm=True, spectral_norm=True)
    with pytest.raises(ValueError, match="hidden widths must be >= 1"):
        MLPCritic(6, hidden=(0,))


def test_residual_layer_norm_critic_learns_a_dependency():
    from mdmest.measures import TotalCorrelation
    from mdmest.tasks import gaussian_task_with_tc

    torch.manual_seed(0)
    views = [
        torch.as_tensor(v, dtype=torch.float32)
        for v in gaussian_task_with_tc(1.0, [2, 2]).sample(4000, seed=0)
    ]
    critic = MLPCritic(4, hidden=(32, 32, 32), activation="gelu", residual=True, layer_norm=True)
    measure = TotalCorrelation([2, 2], critic=critic, sampler="shifted")
    optimizer = torch.optim.Adam(measure.parameters(), lr=3e-3)
    for step in range(300):
        rows = torch.randint(0, 4000, (256,), generator=torch.Generator().manual_seed(step))
        loss = measure(*(v[rows] for v in views))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        value = float(measure.estimate(*views))
    assert 0.7 < value < 1.15  # the true value is 1 nat; an untrained critic reads about 0


# -- the Gaussian-mixture critic and the offset critic of estimate's recipe -------------------------
def _clustered(n: int, seed: int):
    """Two views of 2 features sharing one of three cluster labels (unit noise), and the exact
    pointwise log-ratio of each row."""
    from scipy.special import logsumexp

    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array(
        [[[-2.5, 0.0], [0.0, 2.5]], [[0.0, 2.5], [2.5, 0.0]], [[2.5, -1.0], [-2.5, 0]]]
    )
    label = rng.choice(3, size=n, p=weights)
    views = [means[label, k] + rng.standard_normal((n, 2)) for k in range(2)]

    def log_parts(x, k):  # log w_c + log N(x_k; m_ck, I), (n, 3)
        sq = ((x[:, None, :] - means[None, :, k]) ** 2).sum(-1)
        return np.log(weights) - 0.5 * sq - np.log(2 * np.pi)

    parts = [log_parts(v, k) for k, v in enumerate(views)]
    joint = logsumexp(np.log(weights) + sum(p - np.log(weights) for p in parts), axis=1)
    pointwise = joint - sum(logsumexp(p, axis=1) for p in parts)
    return views, pointwise


def test_mixture_critic_of_one_component_is_the_gaussian_log_ratio():
    from mdmest.critics import GaussianCritic, GaussianMixtureCritic

    rows = np.concatenate(gaussian_task_with_tc(1.0, (3, 2)).sample(4000, seed=0), axis=1)
    mixture = GaussianMixtureCritic.fit(rows, [3, 2], components=1, reg=1e-12)
    gaussian = GaussianCritic.fit(rows, [3, 2])  # np.cov's n − 1: differs by O(1/n)
    x = torch.as_tensor(rows[:200])
    assert torch.allclose(mixture(x), gaussian(x), atol=2e-3)
    assert mixture(x.float()).dtype == torch.float32


def test_mixture_critic_reads_clustered_dependency_the_gaussian_misses():
    from mdmest.critics import GaussianMixtureCritic

    views, _ = _clustered(12000, seed=0)
    truth = float(_clustered(200_000, seed=1)[1].mean())
    rows = np.concatenate(views, axis=1)
    held_out = [torch.as_tensor(v[8000:], dtype=torch.float32) for v in views]

    def bound(components):
        critic = GaussianMixtureCritic.fit(rows[:8000], [2, 2], components=components)
        measure = mdmest.TotalCorrelation([2, 2], critic=critic, sampler="shifted")
        return float(measure.estimate(*held_out, negatives=64, generator=0)), critic

    three, critic = bound(3)
    one, _ = bound(1)
    assert three == pytest.approx(truth, abs=0.05)  # the model family: all of it
    assert one < truth - 0.2  # a Gaussian reads the linear part only
    # The fit's own likelihood rises with the right number of components.
    assert critic.log_likelihood > GaussianMixtureCritic.fit(rows[:8000], [2, 2], 1).log_likelihood


def test_mixture_critic_names_bad_input():
    from mdmest.critics import GaussianMixtureCritic

    rows = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ValueError, match=r"components must be an int from 1 to .*\(50\), got 0"):
        GaussianMixtureCritic.fit(rows, [2, 2], components=0)
    with pytest.raises(ValueError, match=r"reg must be > 0, got 0.0"):
        GaussianMixtureCritic.fit(rows, [2, 2], components=2, reg=0.0)
    with pytest.raises(ValueError, match=r"rows of 5 features.*got shape \(50, 4\)"):
        GaussianMixtureCritic.fit(rows, [2, 3], components=2)
    with pytest.raises(
        ValueError, match=r"unknown covariance 'diag'; valid values are 'full', 'block'"
    ):
        GaussianMixtureCritic.fit(rows, [2, 2], components=2, covariance="diag")
    from mdmest._mixture import fit_mixture

    with pytest.raises(
        ValueError, match=r"blocks must be .* summing to the 4 features, got \[2, 3\]"
    ):
        fit_mixture(torch.as_tensor(rows), 2, blocks=[2, 3])


def test_a_block_mixture_keeps_the_views_independent_within_each_component():
    from mdmest._mixture import fit_mixture
    from mdmest.critics import GaussianMixtureCritic

    views, _ = _clustered(12000, seed=0)
    truth = float(_clustered(200_000, seed=1)[1].mean())
    rows = np.concatenate(views, axis=1)
    fitted = fit_mixture(torch.as_tensor(rows[:8000]), 3, blocks=[2, 2])
    assert torch.all(fitted.covariances[:, :2, 2:] == 0)
    assert torch.all(fitted.covariances[:, 2:, 2:] != 0)
    critic = GaussianMixtureCritic.fit(rows[:8000], [2, 2], components=3, covariance="block")
    assert critic.covariance == "block"
    held_out = [torch.as_tensor(v[8000:], dtype=torch.float32) for v in views]
    measure = mdmest.TotalCorrelation([2, 2], critic=critic, sampler="shifted")
    # The views share nothing but the label here: the latent-class model is the task's own.
    assert float(measure.estimate(*held_out, negatives=64, generator=0)) == pytest.approx(
        truth, abs=0.05
    )
    # Its joint density is read view by view; the whole joint's whitening gives the same.
    import copy

    general = copy.deepcopy(critic)
    general.covariance = "full"
    x = torch.as_tensor(rows[8000:])
    assert torch.allclose(critic(x), general(x), rtol=0, atol=1e-10)
    # One block component is the product of the views' own Gaussians: a ratio of 0 on any row.
    one = GaussianMixtureCritic.fit(rows[:8000], [2, 2], components=1, covariance="block")
    assert torch.allclose(one(torch.as_tensor(rows[8000:])), torch.zeros(4000, dtype=torch.float64))


def test_the_tuning_rows_choose_the_mixture_covariance():
    from mdmest.estimation import EstimateConfig
    from mdmest.estimation.closed_forms import mixture_critic

    # Shared clusters among views padded with noise features: full covariances spend most of
    # their parameters on pairs of features the label does not tie; the block mixture does not.
    views, _ = _clustered(6000, seed=2)
    rng = np.random.default_rng(7)
    wide = [np.concatenate([v, rng.normal(size=(6000, 8))], axis=1) for v in views]
    train, tuning = [v[:5000] for v in wide], [v[5000:] for v in wide]
    chosen = mixture_critic(train, tuning, config=EstimateConfig())
    assert chosen.covariance == "block" and chosen.components >= 2
    full = mixture_critic(train, tuning, config=EstimateConfig(mixture_block=0))
    assert full.covariance == "full"
    # The sign of a correlation between the views flips with the component: no mixture of
    # independent views follows it with few components, two full ones do exactly.
    z = rng.normal(size=(6000, 2)) @ np.array([[1.0, 0.9], [0.0, np.sqrt(1 - 0.81)]])
    sign = rng.choice([-1.0, 1.0], size=(6000, 1))
    pair = [np.concatenate([z[:, :1], rng.normal(size=(6000, 3))], axis=1),
            np.concatenate([sign * z[:, 1:], rng.normal(size=(6000, 3))], axis=1)]  # fmt: skip
    train, tuning = [v[:5000] for v in pair], [v[5000:] for v in pair]
    assert mixture_critic(train, tuning, config=EstimateConfig()).covariance == "full"


def test_offset_critic_starts_at_its_base_and_trains_only_the_network():
    from mdmest.critics import GaussianMixtureCritic, OffsetCritic

    rows = _rows(200, 4)
    base = GaussianMixtureCritic.fit(rows, [2, 2], components=2)
    torch.manual_seed(0)
    critic = OffsetCritic(base, MLPCritic(4, hidden=(16,)))
    bias = critic.net.net[-1].bias
    assert torch.allclose(critic(rows), base(rows) + bias)
    critic(rows).sum().backward()
    assert critic.net.net[-1].weight.grad is not None
    assert list(base.parameters()) == [] and all(not b.requires_grad for b in base.buffers())
    with pytest.raises(ValueError, match="net must end in an nn.Linear layer, got ReLU"):
        OffsetCritic(base, nn.ReLU())


def test_estimate_trains_its_critic_on_top_of_a_mixture_fitted_to_the_training_rows():
    from mdmest.critics import OffsetCritic
    from mdmest.estimation import EstimateConfig

    views, _ = _clustered(6000, seed=2)
    truth = float(_clustered(200_000, seed=1)[1].mean())
    # Two views of 2 features: below the default's 8 features; the start asked for anyway.
    mixture = EstimateConfig(mixture_min_features=0)
    options = dict(candidates=["critic"], steps=30, eval_negatives=8, progress=False)
    result = mdmest.estimate(views, "dv", config=mixture, **options)
    critic = result.measure.critic
    assert isinstance(critic, OffsetCritic) and critic.base.components >= 2
    # The result says which mixture the critic started from.
    assert result.candidates["critic"].start == critic.base.components
    assert result.to_dict()["candidates"]["critic"]["start"] == critic.base.components
    assert result.candidates["critic"].start_covariance == critic.base.covariance
    # 30 steps of a network alone read far less; the mixture carries the value.
    assert result.value == pytest.approx(truth, abs=0.08)
    scratch = EstimateConfig(mixture_max_components=0)
    alone = mdmest.estimate(views, "dv", config=scratch, **options)
    assert isinstance(alone.measure.critic, MLPCritic) and alone.value < truth - 0.2
    assert alone.candidates["critic"].start == 0
    assert alone.candidates["critic"].start_covariance == ""
    # Independent views: no mixture bounds above the noise; the critic starts from nothing.
    rng = np.random.default_rng(3)
    independent = [rng.normal(size=(6000, 3)), rng.normal(size=(6000, 2))]
    flat = mdmest.estimate(independent, "dv", config=mixture, **options)
    assert isinstance(flat.measure.critic, MLPCritic) and abs(flat.value) < 0.01


def test_the_mixture_start_is_gated_on_what_one_gaussian_misses():
    from mdmest.critics import OffsetCritic
    from mdmest.estimation import EstimateConfig
    from mdmest.estimation.closed_forms import mixture_critic

    # Gaussian views: two or more components read no more than one; the critics start from
    # nothing, and the value is the one without the option, bit for bit.
    views = gaussian_task_with_tc(2.0, (2, 3)).sample(6000, seed=5)
    train, tuning = [v[:5000] for v in views], [v[5000:] for v in views]
    assert mixture_critic(train, tuning, config=EstimateConfig()) is None
    options = dict(candidates=["critic"], steps=30, eval_negatives=8, progress=False)
    gated = mdmest.estimate(views, "dv", **options)  # the default: mixture_max_components=8
    scratch = mdmest.estimate(
        views, "dv", config=EstimateConfig(mixture_max_components=0), **options
    )
    assert isinstance(gated.measure.critic, MLPCritic)
    assert gated.value == scratch.value
    # Clustered views: the mixture of several components reads what the Gaussian misses.
    views, _ = _clustered(6000, seed=2)
    train, tuning = [v[:5000] for v in views], [v[5000:] for v in views]
    assert mixture_critic(train, tuning, config=EstimateConfig()).components >= 2
    assert mixture_critic(train, tuning, config=EstimateConfig(mixture_max_components=1)) is None
    # ... but 4 features in all are fewer than the default's 8: the network starts from nothing.
    few = mdmest.estimate(views, "dv", **options)
    assert isinstance(few.measure.critic, MLPCritic)
    wide = [np.concatenate([v, np.random.default_rng(k).normal(size=(6000, 2))], axis=1)
            for k, v in enumerate(views)]  # fmt: skip
    assert isinstance(mdmest.estimate(wide, "dv", **options).measure.critic, OffsetCritic)


def test_refits_and_the_deeper_critic_start_from_nothing():
    from mdmest.critics import OffsetCritic
    from mdmest.estimation import EstimateConfig
    from mdmest.estimation.candidates import CANDIDATES
    from mdmest.estimation.protocol import prepare

    views, _ = _clustered(6000, seed=4)
    options = dict(
        decomposition=None, steps=5, batch_size=64, lr=3e-3, lr_schedule=None, weight_decay=0.0,
        negatives=None, test_fraction=0.2, eval_negatives=4, seed=0, progress=False,
    )  # fmt: skip
    arrays = [np.asarray(v, dtype=np.float64) for v in views]
    data = prepare(
        arrays,
        "dv",
        {},
        options,
        EstimateConfig(mixture_min_features=0),
        "per_view",
        torch.float32,
        torch.device("cpu"),
    )
    first = CANDIDATES["critic"].run(data, {})
    refit = CANDIDATES["weight_decay"].run(data, {"critic": first})
    assert isinstance(first.measure.critic, OffsetCritic)
    assert first.measure.critic.base is data.mixture_base  # fitted once per call
    assert isinstance(refit.measure.critic, MLPCritic)
    # The residual critic starts from nothing: the validation rows then see both starts.
    deeper = CANDIDATES["deeper"].run(data, {"critic": first})
    critic = deeper.measure.critic
    assert isinstance(critic, MLPCritic)
    assert any(type(m).__name__ == "_ResidualBlock" for m in critic.modules())
