"""White-box audit: gradient-space canaries, and every intermediate model observed.

The strongest auditor the DP-SGD threat model allows (Nasr et al. 2023, "Tight Auditing of
Differentially Private Machine Learning", arXiv:2302.07956; Steinke et al. 2023, §7): it
inserts examples whose per-example gradient it chooses — a Dirac canary, one coordinate of
its own, of norm well above the clipping bound — and sees the model after every step, as
an adversary who sees each round's noised update would. The canaries go through the
partner's own step: sampled with the data rows by its Poisson sampler, clipped by its
clipping, summed into the same update as its Gaussian noise (client/dp_sgd.py, train).

A canary's score is its coordinate's observed step, divided by the step's learning-rate
scale, less what the data rows would add there in expectation (q × their clipped gradients
at the model before the step: the auditor knows the data, the model and q, none of which
depends on which canaries are in), summed over every step. For an included canary each
step adds C with probability q on top of N(0, (σC)²) noise: the sum separates in from out
by about q√T/σ standard deviations, the whole mechanism's signal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from sangsaeng.client.dp_sgd import learning_rate_factor
from sangsaeng.client.ghost_step import clipped_sum, linear_layers

from .canaries import gradient_canaries, rng
from .training import Advance, AuditedRun

STREAM = 1  # the white-box run's seeds
# The expected data step is computed on at most this many rows (a fixed random subset,
# scaled up: an unbiased estimate, drawn independently of the canaries), so that its cost
# each step stays bounded whatever the data's size.
EXPECTATION_ROWS = 10_000


def parameter_count(run: AuditedRun) -> int:
    return sum(p.numel() for p in run.initial_model().parameters())


def scores(run: AuditedRun, x: np.ndarray, y: np.ndarray, included: np.ndarray,
           advance: Advance) -> np.ndarray:
    """One training run with the included Dirac canaries; a score per canary."""
    task = run.task
    model = run.initial_model()
    layers = linear_layers(model)
    params = list(model.parameters())
    dtype = params[0].dtype
    coordinates, canaries = gradient_canaries(
        run.seed, len(included), sum(p.numel() for p in params), task.dp.max_grad_norm, dtype)
    subset = (rng(run.seed, STREAM, 3).choice(len(y), EXPECTATION_ROWS, replace=False)
              if len(y) > EXPECTATION_ROWS else np.arange(len(y)))
    share = len(y) / len(subset)
    features, labels = torch.from_numpy(x[subset]), torch.from_numpy(y[subset])
    weights = (None if task.class_weights is None
               else torch.tensor(task.class_weights, dtype=dtype))
    index = torch.from_numpy(coordinates)
    q, base = run.mechanism.sample_rate, task.learning_rate / run.batch_size
    total = torch.zeros(len(included), dtype=torch.float64)

    def expected_data_step() -> torch.Tensor:
        sums = clipped_sum(layers, features, labels, task.dp.max_grad_norm, weights)
        return q * share * torch.cat([s.flatten() for s in sums])[index]

    state = {"before": parameters_to_vector(params).detach()[index].clone(),
             "expected": expected_data_step()}

    def observe(round_: int, step: int) -> None:
        with torch.no_grad():
            after = parameters_to_vector(params)[index].clone()
        scale = base * learning_rate_factor(task, round_, step, run.mechanism.steps)
        if scale > 0:  # a step at learning rate 0 (a cosine schedule's end) moves nothing
            total.add_(((state["before"] - after) / scale - state["expected"]).double())
        state["before"], state["expected"] = after, expected_data_step()

    run.train(model, x, y, STREAM, advance, gradient_canaries=canaries[torch.from_numpy(
        np.flatnonzero(included))], after_step=observe)
    return total.numpy()
