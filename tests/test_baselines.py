"""The baseline estimators the benchmarks score beside mdmest (mdmest.experiments.baselines)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from mdmest.experiments import baselines
from mdmest.tasks import correlated_pair, gaussian_task_with_tc


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ksg_on_a_correlated_pair():
    task = correlated_pair(0.8, 1)  # 0.511 nats
    values = [baselines.ksg(task.sample(2000, seed=s)) for s in range(3)]
    assert abs(np.mean(values) - task.total_correlation) <= 0.05, values


def test_ksg_reads_about_zero_on_independent_views():
    for dims in ([1, 1], [2, 3], [1, 1, 1]):
        value = baselines.ksg(gaussian_task_with_tc(0.0, dims).sample(2000, seed=0))
        assert abs(value) <= 0.05, (dims, value)


def test_ksg_total_correlation_of_three_views():
    task = gaussian_task_with_tc(1.0, [1, 1, 1])
    values = [baselines.ksg(task.sample(2000, seed=s)) for s in range(3)]
    assert abs(np.mean(values) - 1.0) <= 0.08, values


def test_ksg_is_invariant_to_feature_scale_and_breaks_ties():
    x, y = correlated_pair(0.8, 1).sample(1000, seed=0)
    value = baselines.ksg([x, y])
    assert baselines.ksg([1000 * x, y - 5]) == pytest.approx(value, abs=1e-3)
    # Rounded data has tied rows; the jitter keeps every distance positive and the value finite.
    assert math.isfinite(baselines.ksg([np.round(x, 1), np.round(y, 1)]))


def test_ksg_rejects_bad_input():
    x, y = correlated_pair(0.5, 1).sample(20, seed=0)
    with pytest.raises(ValueError, match="k"):
        baselines.ksg([x, y], k=20)
    with pytest.raises(ValueError, match="same number of rows"):
        baselines.ksg([x, y[:10]])
    with pytest.raises(TypeError):
        baselines.ksg(np.concatenate([x, y], axis=1))


def test_infonce_is_capped_at_log_batch_and_near_a_small_mi():
    task = correlated_pair(0.5, 1)  # 0.144 nats
    start = time.perf_counter()
    value = baselines.infonce(task.sample(2000, seed=0), steps=300, batch_size=128)
    assert time.perf_counter() - start < 5.0
    assert value <= math.log(128)
    assert abs(value - task.total_correlation) <= 0.08, value
    # Far above log B the bound saturates near log B and never passes it.
    strong = correlated_pair(0.999, 4).sample(2000, seed=0)  # 13.8 nats
    capped = baselines.infonce(strong, steps=300, batch_size=16)
    assert math.log(16) - 0.5 < capped <= math.log(16)


def test_infonce_bound_of_a_score_matrix():
    scores = torch.eye(8) * 100.0  # a perfect critic: the bound is log B
    assert float(baselines.infonce_bound(scores)) == pytest.approx(math.log(8))
    assert float(baselines.infonce_bound(torch.zeros(8, 8))) == pytest.approx(0.0, abs=1e-6)


def test_infonce_sums_the_chain_rule_for_three_views():
    views = gaussian_task_with_tc(1.0, [1, 1, 1]).sample(1000, seed=0)
    options = dict(steps=50, batch_size=64, seed=1)
    terms = [
        baselines.infonce_pair(views[0], views[1], **options),
        baselines.infonce_pair(np.concatenate(views[:2], axis=1), views[2], **options),
    ]
    assert baselines.infonce(views, **options) == pytest.approx(sum(terms))
