"""Study (not the library): the fitted mixture alone, with each component's covariance full,
block-diagonal by view, or block-diagonal by view plus rank r (a mixture of factor analysers
whose noise is per view), on tuning tasks of random mixtures and sign-symmetric views.

Each mixture of 2, 4 and 8 components (ranks 1, 2 and 4 for the third kind) is fitted on the
training rows ``estimate`` prepares and read by its DV bound on the tuning, validation and test
rows; one JSON line per task. The block-plus-rank fit is a prototype: EM whose M-step fits
each component's weighted covariance by a few factor-analysis iterations, patched into
``mdmest.critics.fit_mixture`` for the run.

    OMP_NUM_THREADS=1 python docs/results/mixture_low_rank/study.py runs.jsonl 19 30 60
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import torch

import mdmest._mixture as mixture_module
import mdmest.critics as critics
from mdmest.estimation import EstimateConfig, _checked
from mdmest.estimation.protocol import measure_outcome, prepare
from mdmest.estimation.recipes import RECIPE_LR
from mdmest.measures import TotalCorrelation
from mdmest.tasks import random_task

DATA_SEED = 1000  # as benchmarks/random_tasks.py
OPTIONS = dict(
    decomposition=None, steps=2000, batch_size=256, lr=RECIPE_LR, lr_schedule="cosine",
    weight_decay=0.0, negatives=None, test_fraction=0.2, eval_negatives=None, seed=0,
    progress=False,
)  # fmt: skip
FULL_FIT = critics.fit_mixture


def factor_fit(cov, dims, rank, start=None, iterations=20):
    """Ψ (block-diagonal by view) and W (D × rank) with Ψ + W Wᵀ fitted to ``cov``."""
    mask = torch.block_diag(*[torch.ones(d, d, dtype=cov.dtype) for d in dims])
    if start is None:
        psi = cov * mask
        values, vectors = torch.linalg.eigh(cov * (1 - mask))  # the cross-view part
        top = values.abs().argsort(descending=True)[:rank]
        w = vectors[:, top] * values[top].abs().clamp(min=1e-6).sqrt()
    else:
        w, psi = start
    eye = torch.eye(rank, dtype=cov.dtype)
    for _ in range(iterations):
        beta = torch.linalg.solve(psi + w @ w.T, w).T  # (rank, D)
        moment = eye - beta @ w + beta @ cov @ beta.T
        w = cov @ beta.T @ torch.linalg.inv(moment)
        psi = (cov - w @ beta @ cov) * mask
        psi = 0.5 * (psi + psi.T)
    return w, psi


def low_rank_fit(dims, rank):
    def fit(x, components, *, reg=1e-3, iterations=100, tol=1e-3, seed=0, blocks=None):
        x = x.to(torch.float64)
        n, d = x.shape
        generator = torch.Generator().manual_seed(seed)
        labels = mixture_module._lloyd(x, mixture_module._kmeans_pp(x, components, generator))
        resp = torch.nn.functional.one_hot(labels, components).to(x.dtype)
        eye = torch.eye(d, dtype=x.dtype)
        previous, state = -math.inf, [None] * components
        for iteration in range(1, iterations + 1):
            counts = resp.sum(0) + 1e-12
            weights = counts / n
            means = (resp.T @ x) / counts[:, None]
            centred = x[None] - means[:, None]
            cov = torch.einsum("cnd,nc,cne->cde", centred, resp, centred) / counts[:, None, None]
            cov = cov + reg * eye
            fitted_covs = []
            for c in range(components):
                steps = 20 if state[c] is None else 5
                state[c] = factor_fit(cov[c], dims, rank, state[c], steps)
                w, psi = state[c]
                fitted_covs.append(psi + w @ w.T + 1e-9 * eye)
            covariances = torch.stack(fitted_covs)
            factors = torch.linalg.cholesky(covariances)
            joint = torch.log(weights) + mixture_module.log_gaussians(x, means, factors)
            log_likelihood = torch.logsumexp(joint, 1)
            resp = torch.exp(joint - log_likelihood[:, None])
            mean = float(log_likelihood.mean())
            fitted = mixture_module.Mixture(weights, means, covariances, mean, iteration)
            if mean - previous < tol:
                break
            previous = mean
        return fitted

    return fit


def values(data, kind, components=(2, 4, 8), ranks=(1, 2, 4)) -> dict:
    rows = np.concatenate(data.rows("train"), axis=1)
    dims = [a.shape[1] for a in data.arrays]
    out = {}
    for count in components:
        if len(rows) <= count * rows.shape[1]:
            break
        for rank in ranks if kind == "lowrank" else (0,):
            critics.fit_mixture = low_rank_fit(dims, rank) if kind == "lowrank" else FULL_FIT
            try:
                critic = critics.GaussianMixtureCritic.fit(
                    rows, dims, count, seed=0, covariance="block" if kind == "block" else "full"
                )
            except (ValueError, torch.linalg.LinAlgError) as error:
                out[f"{count}/{rank}"] = str(error)[:40]
                continue
            finally:
                critics.fit_mixture = FULL_FIT
            outcome = measure_outcome(
                data, "m", TotalCorrelation(dims, critic=critic, sampler="shifted")
            )
            out[f"{count}/{rank}"] = (
                outcome.score("tuning")[0],
                outcome.validation[0],
                outcome.read_test()[0],
            )
    return out


def main(out: str, seeds: list[int]) -> None:
    torch.set_num_threads(1)
    for seed in seeds:
        task = random_task(seed)
        views = task.sample(10000, seed=DATA_SEED + seed)
        arrays, transform, dtype, device = _checked(views, "dv", {}, "auto", None, dict(OPTIONS))
        data = prepare(arrays, "dv", {}, dict(OPTIONS), EstimateConfig(), transform, dtype, device)
        record = {
            "seed": seed, "structure": task.structure, "base": task.base_structure,
            "dims": task.dims, "truth": task.total_correlation,
        }  # fmt: skip
        for kind in ("full", "block", "lowrank"):
            start = time.perf_counter()
            record[kind] = values(data, kind)
            record[kind + "_s"] = time.perf_counter() - start
        with open(out, "a") as f:
            print(json.dumps(record), file=f, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
