import math

import pytest
import torch
from torch import nn

import mdmest
from mdmest import FTotalCorrelation, TotalCorrelation, WassersteinDependency, make_measure
from mdmest.critics import MLPCritic, paper_critic

DIMS = (4, 3, 2)


def views(batch=16, dims=DIMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, d, generator=g) for d in dims]


@pytest.mark.parametrize("name", ["dv", "f", "wasserstein"])
def test_loss_is_a_scalar_with_gradients_for_critic_and_views(name):
    measure = make_measure(name, DIMS)
    xs = [v.requires_grad_(True) for v in views()]
    loss = measure(*xs)
    assert loss.shape == ()
    loss.backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in xs)
    assert all(p.grad is not None for p in measure.critic.parameters() if p.requires_grad)
    assert measure.estimate(*xs).shape == ()
    assert measure.scores(*xs).shape == (16,)


def test_loss_value_is_the_negated_dv_bound_even_with_bias_correction():
    torch.manual_seed(0)
    measure = TotalCorrelation(DIMS, negatives=2)
    xs = views()
    measure.generator = torch.Generator().manual_seed(1)
    loss = measure(*xs)
    assert loss.item() == pytest.approx(-measure.last_bound.item(), abs=1e-6)


def test_mine_gradient_uses_the_moving_average():
    # Critic T(x) = w * x_sum; the corrected gradient of the log term is E_q[e^T dT/dw] / m.
    critic = nn.Linear(2, 1, bias=False)
    measure = TotalCorrelation([1, 1], critic=critic, ema_decay=0.5)
    x = torch.tensor([[0.5], [-1.0], [2.0], [0.0]])
    y = torch.tensor([[1.0], [0.0], [-0.5], [1.5]])
    g = torch.Generator().manual_seed(0)
    measure.generator = g
    measure(x, y)  # first step: m starts at the batch mean
    m_before = measure.running_log_mean_exp.clone()
    measure.generator = torch.Generator().manual_seed(1)
    critic.zero_grad()
    loss = measure(x, y)
    loss.backward()
    # recompute by hand with the same shuffle
    index = mdmest.sampling.product_indices(4, 2, generator=torch.Generator().manual_seed(1))
    product = torch.cat([x[index[0]], y[index[1]]], 1)
    joint = torch.cat([x, y], 1)
    with torch.no_grad():
        t_product = critic(product).squeeze(1)
        batch_log_mean = torch.logsumexp(t_product, 0) - math.log(4)
        log_m = torch.logaddexp(math.log(0.5) + m_before, math.log(0.5) + batch_log_mean)
        weights = torch.exp(t_product - log_m) / 4
        expected = -(joint.mean(0) - (weights.unsqueeze(1) * product).sum(0))
    assert torch.allclose(critic.weight.grad[0], expected, atol=1e-6)
    assert measure.running_log_mean_exp.item() == pytest.approx(log_m.item(), abs=1e-6)
    assert measure.num_updates.item() == 2


def test_ema_off_gives_the_plain_dv_gradient():
    torch.manual_seed(0)
    a = TotalCorrelation(DIMS, ema_decay=None)
    b = TotalCorrelation(DIMS, ema_decay=None, critic=a.critic)
    xs = views()
    a.generator = torch.Generator().manual_seed(0)
    b.generator = torch.Generator().manual_seed(0)
    assert a(*xs).item() == b(*xs).item()
    assert a.num_updates.item() == 0


def test_state_dict_round_trip_restores_critic_and_moving_average():
    torch.manual_seed(0)
    measure = TotalCorrelation(DIMS)
    opt = torch.optim.Adam(measure.parameters(), 1e-2)
    for seed in range(5):
        loss = measure(*views(seed=seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = measure.state_dict()
    assert "running_log_mean_exp" in state and "num_updates" in state
    restored = TotalCorrelation(DIMS)
    restored.load_state_dict(state)
    for key, value in measure.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    xs = views(seed=9)
    assert restored.scores(*xs).tolist() == measure.scores(*xs).tolist()


def test_critic_may_return_n_by_1_and_bad_shapes_are_rejected():
    critic = nn.Sequential(nn.Linear(9, 1))
    measure = TotalCorrelation(DIMS, critic=critic)
    assert measure.scores(*views()).shape == (16,)
    bad = TotalCorrelation(DIMS, critic=nn.Linear(9, 2))
    with pytest.raises(ValueError, match=r"critic must map \(N, 9\) to \(N,\) or \(N, 1\)"):
        bad(*views())


def test_f_measure_divergences_and_default():
    assert FTotalCorrelation(DIMS).divergence == "kl"
    for divergence in ("kl", "reverse_kl", "chi2", "hellinger", "js"):
        assert torch.isfinite(FTotalCorrelation(DIMS, divergence=divergence)(*views()))


def test_spectral_norm_critic_is_one_lipschitz():
    torch.manual_seed(0)
    measure = WassersteinDependency([3, 3], lipschitz="spectral_norm")
    opt = torch.optim.Adam(measure.parameters(), 1e-2)
    for seed in range(30):
        loss = measure(*views(64, (3, 3), seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
    measure.eval()
    x = torch.randn(256, 6, requires_grad=True)
    (grad,) = torch.autograd.grad(measure.critic(x).sum(), x)
    assert grad.norm(dim=1).max().item() <= 1.0 + 1e-3


def test_spectral_norm_is_applied_to_a_user_critic():
    critic = MLPCritic(4, hidden=(8,))
    WassersteinDependency([2, 2], lipschitz="spectral_norm", critic=critic)
    assert all(hasattr(m, "parametrizations") for m in critic.modules() if isinstance(m, nn.Linear))


def test_normalize_makes_wasserstein_scale_invariant():
    torch.manual_seed(0)
    measure = WassersteinDependency([2, 2], normalize=True)
    xs = views(64, (2, 2))
    measure.generator = torch.Generator().manual_seed(0)
    a = measure.estimate(*xs)
    measure.generator = torch.Generator().manual_seed(0)
    b = measure.estimate(*(10 * v for v in xs))
    assert a.item() == pytest.approx(b.item(), abs=1e-4)


def test_paper_critic_follows_table_4():
    critic = paper_critic(12)
    linears = [m for m in critic.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 6
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.4 for m in critic.modules()) == 5
    assert isinstance(critic.net[-1], nn.Sigmoid)
    assert ((critic(torch.randn(5, 12)) > 0) & (critic(torch.randn(5, 12)) < 1)).all()


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dv", "f", "wasserstein"])
def test_bad_views_raise_named_errors(name):
    measure = make_measure(name, (80, 74), names=("z_text", "z_audio"))
    good = [torch.randn(8, 80), torch.randn(8, 74)]
    with pytest.raises(ValueError, match=r"expected 2 views \(dims=\(80, 74\)\), got 1"):
        measure(good[0])
    with pytest.raises(ValueError, match=r"view 2 \(z_audio\) has 80 features, dims\[1\] is 74"):
        measure(good[0], torch.randn(8, 80))
    with pytest.raises(ValueError, match=r"view 2 \(z_audio\) has 7 rows, view 1 has 8"):
        measure(good[0], torch.randn(7, 74))
    with pytest.raises(ValueError, match="batch size 1; shuffling needs at least 2 rows"):
        measure(torch.randn(1, 80), torch.randn(1, 74))
    with pytest.raises(
        TypeError, match=r"view 1 \(z_text\) must have a floating dtype, got torch.int64"
    ):
        measure(torch.ones(8, 80, dtype=torch.long), good[1])
    nan = good[1].clone()
    nan[3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"view 2 \(z_audio\) contains NaN or Inf"):
        measure(good[0], nan)
    with pytest.raises(ValueError, match=r"view 1 \(z_text\) contains NaN or Inf"):
        measure.estimate(torch.full((8, 80), float("inf")), good[1])
    with pytest.raises(ValueError, match=r"must have shape \(batch, 74\), got \(8, 74, 1\)"):
        measure(good[0], good[1].unsqueeze(-1))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got ndarray"):
        measure(good[0], good[1].numpy())


def test_views_on_different_devices_are_rejected():
    measure = make_measure("dv", (2, 2))
    meta = torch.empty(4, 2, device="meta")
    with pytest.raises(ValueError, match=r"view 2 is on meta, view 1 is on cpu"):
        measure(torch.randn(4, 2), meta)


def test_bad_options_list_the_valid_values():
    with pytest.raises(
        ValueError, match="unknown measure 'mine'; valid values are 'dv', 'f', 'wasserstein'"
    ):
        make_measure("mine", (2, 2))
    with pytest.raises(ValueError, match="valid values are 'gradient_penalty', 'spectral_norm'"):
        WassersteinDependency((2, 2), lipschitz="clip")
    with pytest.raises(ValueError, match="unknown divergence"):
        FTotalCorrelation((2, 2), divergence="tv")
    with pytest.raises(ValueError, match="at least 2 views"):
        TotalCorrelation([3])
    with pytest.raises(ValueError, match="negatives must be an int >= 1"):
        TotalCorrelation((2, 2), negatives=0)
    with pytest.raises(ValueError, match="ema_decay must lie in"):
        TotalCorrelation((2, 2), ema_decay=1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'lipschitz'"):
        make_measure("dv", (2, 2), lipschitz="spectral_norm")
    with pytest.raises(ValueError, match="valid values are 'relu'"):
        MLPCritic(4, activation="swishy")


def test_sampler_by_name_or_callable():
    from mdmest.sampling import shifted_product_indices

    assert TotalCorrelation(DIMS, sampler="shifted").sampler is shifted_product_indices
    calls = []

    def recording_sampler(batch_size, num_views, negatives, generator=None, device=None):
        calls.append((batch_size, num_views, negatives))
        return shifted_product_indices(batch_size, num_views, negatives, generator=generator)

    TotalCorrelation(DIMS, sampler=recording_sampler, negatives=2)(*views())
    assert calls == [(16, 3, 2)]
    with pytest.raises(
        ValueError, match="unknown sampler 'ring'; valid values are 'shuffle', 'shifted'"
    ):
        TotalCorrelation(DIMS, sampler="ring")


def test_gradient_penalty_estimate_is_corrected_to_a_one_lipschitz_critic():
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))  # slope 5 everywhere
    xs = views(64, (1, 1))
    corrected = WassersteinDependency([1, 1], critic=critic, lipschitz_correction=True)
    raw = WassersteinDependency([1, 1], critic=critic, lipschitz_correction=False)
    corrected.generator = torch.Generator().manual_seed(0)
    raw.generator = torch.Generator().manual_seed(0)
    assert corrected.estimate(*xs).item() == pytest.approx(raw.estimate(*xs).item() / 5, rel=1e-5)
    # a critic already below slope 1 is left alone
    with torch.no_grad():
        critic.weight.mul_(0.1)
    corrected.generator = torch.Generator().manual_seed(0)
    raw.generator = torch.Generator().manual_seed(0)
    assert corrected.estimate(*xs).item() == pytest.approx(raw.estimate(*xs).item(), rel=1e-6)


def test_huge_but_finite_values_are_not_mistaken_for_inf():
    from mdmest._validation import check_views

    huge = torch.full((8, 2), 3e38)  # finite, but its sum overflows float32
    check_views([huge, torch.zeros(8, 2)], (2, 2))  # no error
    huge[5, 1] = float("inf")
    with pytest.raises(ValueError, match="view 1 contains NaN or Inf"):
        check_views([huge, torch.zeros(8, 2)], (2, 2))


def test_cpu_and_accelerator_paths_of_the_sampler_give_permutations():
    from mdmest.sampling import product_indices

    index = product_indices(64, 4, negatives=3, generator=torch.Generator().manual_seed(0))
    for row in index[1:]:
        for j in range(3):
            assert sorted(row[j * 64 : (j + 1) * 64].tolist()) == list(range(64))


@pytest.mark.parametrize("name", ["dv", "f", "wasserstein"])
def test_many_negatives_scored_in_chunks_match_one_call(name, monkeypatch):
    import mdmest._base as base_module

    torch.manual_seed(0)
    measure = make_measure(name, DIMS)
    data = views(64)

    def value(chunk_rows):
        monkeypatch.setattr(base_module, "EVAL_CHUNK_ROWS", chunk_rows)
        measure.generator = torch.Generator().manual_seed(5)
        return measure.estimate(*data, negatives=10)

    # 10 negatives of 64 rows: 640 product rows in one chunk, or in 10 chunks of 64.
    assert torch.allclose(value(10_000), value(1), atol=1e-5)
    with pytest.raises(ValueError, match="negatives must be an int >= 1, got 0"):
        measure.estimate(*data, negatives=0)
    with pytest.raises(ValueError, match="got 2.5"):
        measure.estimate(*data, negatives=2.5)


def test_more_evaluation_negatives_lower_the_variance_of_the_value():
    from mdmest.tasks import gaussian_task_with_tc

    torch.manual_seed(0)
    data = [
        torch.as_tensor(v, dtype=torch.float32)
        for v in gaussian_task_with_tc(2.0, [2, 2]).sample(512, seed=0)
    ]
    measure = TotalCorrelation([2, 2])
    optimizer = torch.optim.Adam(measure.parameters(), lr=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        measure(*data).backward()
        optimizer.step()
    one = torch.stack([measure.estimate(*data) for _ in range(20)])
    many = torch.stack([measure.estimate(*data, negatives=32) for _ in range(20)])
    # The product side averages 32x more rows: its spread shrinks by about sqrt(32).
    assert many.std() < one.std() / 3
    assert abs(many.mean() - one.mean()) < 3 * one.std()


def test_js_critic_objective_trains_on_js_and_reports_dv():
    from mdmest import functional as Fn

    torch.manual_seed(0)
    measure = TotalCorrelation(DIMS, critic_objective="js")
    data = views(32)
    measure.generator = torch.Generator().manual_seed(1)
    loss = measure(*data)
    measure.generator = torch.Generator().manual_seed(1)
    t_joint, t_product, _, _ = measure._joint_and_product(data)
    assert torch.allclose(loss, -Fn.f_bound(t_joint, t_product, "js"))
    assert torch.allclose(measure.last_bound, Fn.dv_bound(t_joint, t_product))
    assert "critic_objective='js'" in repr(measure)
    with pytest.raises(ValueError, match="unknown critic_objective 'nce'"):
        TotalCorrelation(DIMS, critic_objective="nce")


def test_output_bound_squashes_the_critic_scores():
    critic = MLPCritic(3, output_bound=2.0)
    scores = critic(1e4 * torch.randn(64, 3))
    assert scores.abs().max() <= 2.0 and scores.abs().max() > 1.0
    assert critic(torch.zeros(1, 3)).abs().max() < 2.0
    with pytest.raises(ValueError, match="output_bound must be > 0"):
        MLPCritic(3, output_bound=0.0)


def test_view_dims_feed_each_views_mean_square_less_one():
    critic = MLPCritic(5, hidden=(), view_dims=(2, 3))  # one linear layer on 5 + 2 inputs
    assert critic.net[0].in_features == 7
    with torch.no_grad():
        critic.net[0].weight.zero_()
        critic.net[0].bias.zero_()
        critic.net[0].weight[0, 5] = 1.0  # view 1's size
        critic.net[0].weight[0, 6] = 10.0  # view 2's size
    x = torch.tensor([[3.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0]])
    # Row 1: (9 + 1) / 2 - 1 = 4 and -1; row 2: -1 and (1 + 1 + 1) / 3 - 1 = 0.
    assert torch.allclose(critic(x), torch.tensor([4.0 - 10.0, -1.0]))
    with pytest.raises(ValueError, match="summing to in_features=5, got \\[2, 2\\]"):
        MLPCritic(5, view_dims=(2, 2))
    with pytest.raises(ValueError, match="no longer 1-Lipschitz"):
        MLPCritic(5, view_dims=(2, 3), spectral_norm=True)


def _fixed_sampler(index):
    def sampler(batch_size, num_views, negatives, generator=None, device=None):
        return index

    return sampler


@pytest.mark.parametrize("name", ["dv", "f"])
def test_sampled_product_gradient_keeps_the_value_and_is_unbiased(name):
    # 32 joint rows, 8 product rows each: the product side's gradient from 64 rows drawn by weight.
    torch.manual_seed(0)
    data = views(32, dims=(2, 2))
    index = torch.stack([torch.randint(0, 32, (256,)) for _ in range(2)])
    measure = make_measure(name, (2, 2), negatives=8, sampler=_fixed_sampler(index))
    with torch.no_grad():  # a critic far from 0, so the weights e^T are uneven
        for p in measure.critic.parameters():
            p.mul_(3.0)
    params = [p for p in measure.critic.parameters() if p.requires_grad]

    def gradient():
        loss = measure(*data)
        grads = torch.autograd.grad(loss, params)
        return loss.detach(), torch.cat([g.flatten() for g in grads])

    exact_loss, exact = gradient()
    measure.product_grad_rows = 64
    measure.generator = torch.Generator().manual_seed(1)
    draws = [gradient() for _ in range(400)]
    for loss, _ in draws:
        assert loss.item() == pytest.approx(exact_loss.item(), abs=1e-5)
    mean = torch.stack([g for _, g in draws]).mean(0)
    single = draws[0][1]
    # One draw is noisy; 400 average to the exact gradient (a weight off by any factor fails).
    assert (single - exact).norm() > 0.02 * exact.norm()
    assert (mean - exact).norm() < 0.05 * exact.norm()


def test_sampled_product_gradient_only_with_gradients_and_more_rows():
    torch.manual_seed(0)
    data = views(16)
    measure = TotalCorrelation(DIMS, negatives=4)
    measure.product_grad_rows = 64  # = 16 * 4 product rows: all of them, no draw
    measure.generator = torch.Generator().manual_seed(0)
    state = measure.generator.get_state()
    measure(*data)
    assert torch.equal(measure.generator.get_state(), _after_one_index_draw(measure, state))
    measure.product_grad_rows = 8
    with torch.no_grad():
        measure.generator.set_state(state)
        measure(*data)
    assert torch.equal(measure.generator.get_state(), _after_one_index_draw(measure, state))


def _after_one_index_draw(measure, state):
    generator = torch.Generator().manual_seed(0)
    generator.set_state(state)
    measure.sampler(16, len(measure.dims), measure.negatives, generator=generator, device="cpu")
    return generator.get_state()
