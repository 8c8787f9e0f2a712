"""Local DP-SGD: Poisson sampling, per-sample clipping, Gaussian noise (client/ghost_step.py,
client/per_sample_step.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sangsaeng.shared.accounting import Mechanism, gaussian, noise_for_target
from sangsaeng.shared.task import TaskSpec

from .ghost_step import GhostDPSGD, PoissonSampler
from .per_sample_step import PerSampleDPSGD


def plan(task: TaskSpec, n_train: int) -> Mechanism:
    """The mechanism one local round runs on `n_train` rows: ceil(n / batch) steps per
    epoch, each on a Poisson sample that takes every row independently with probability
    q = 1 / ceil(n / batch), so an epoch sees each row once in expectation. The sampled
    Gaussian mechanism is accounted with exactly this q (Mironov, Talwar, Zhang 2019).
    With a target epsilon, sigma is chosen so that all rounds of the run, their
    evaluation releases included, stay within it.
    """
    steps_per_epoch = math.ceil(n_train / task.batch_size)
    sample_rate = 1 / steps_per_epoch
    steps = steps_per_epoch * task.local_epochs
    sigma = task.dp.noise_multiplier
    if sigma is None:
        assert task.dp.target_epsilon is not None  # TaskSpec guarantees one of the two
        sigma = noise_for_target(task.dp.target_epsilon, task.dp.delta, sample_rate,
                                 steps * task.rounds,
                                 fixed=(gaussian(task.dp.evaluation_noise_multiplier),
                                        ) * task.rounds)
    return Mechanism(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps)


def learning_rate_factor(task: TaskSpec, round_: int, step: int, steps: int) -> float:
    """The task's schedule at local step `step` (of `steps`) of round `round_` (from 1):
    the fraction of learning_rate that step takes. Cosine runs over all the run's local
    steps, from 1 at the first to `final` at the last."""
    schedule = task.learning_rate_schedule
    if schedule.kind == "constant":
        return 1.0
    total = task.rounds * steps
    done = min(max(round_ - 1, 0) * steps + step, total - 1)
    progress = done / max(total - 1, 1)
    return schedule.final + (1 - schedule.final) * 0.5 * (1 + math.cos(math.pi * progress))


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, task: TaskSpec,
          mechanism: Mechanism, seed: int | None = None, *, round_: int = 1) -> None:
    """Run `mechanism` in place on `model`: its steps of DP-SGD, each on a Poisson sample
    of the rows with its rate and noise multiplier, as round `round_` of the run (where
    the task's learning-rate schedule is). Every step runs, an empty sample too (its
    update is noise alone), so the accountant's step count is the truth. The task's class
    weights scale each clipped gradient (never above the clipping bound).
    `seed` makes sampling and noise reproducible (tests only: the default draws both
    from the OS)."""
    # Weights drifting under DP noise produce subnormal floats, which x86 computes ~100x
    # slower; flushing them to zero changes nothing a float32 model can tell apart.
    torch.set_flush_denormal(True)
    features, labels = torch.from_numpy(x), torch.from_numpy(y)
    sample = PoissonSampler(len(labels), mechanism.sample_rate, seed)
    weights = (None if task.class_weights is None
               else torch.tensor(task.class_weights, dtype=features.dtype))
    # The clipped, noised sum is divided by a fixed batch size, not the realised one, as
    # Opacus does (opacus/optimizers/optimizer.py, DPOptimizer.scale_grad): here the task's
    # batch_size, which is public, where Opacus takes int(q·n), which depends on the rows
    # (q·n <= batch_size, equal for n a multiple of it).
    # a stack of Linear and ReLU layers takes the fast ghost step; adapters the general one
    step = GhostDPSGD if isinstance(model, nn.Sequential) else PerSampleDPSGD
    dp_step = step(model, lr=task.learning_rate, max_grad_norm=task.dp.max_grad_norm,
                   noise_multiplier=mechanism.noise_multiplier,
                   expected_batch_size=task.batch_size, seed=seed, class_weights=weights)
    scale = dp_step.scale  # lr / expected batch size: the schedule scales the lr
    model.train()
    for i in range(mechanism.steps):
        dp_step.scale = scale * learning_rate_factor(task, round_, i, mechanism.steps)
        rows = sample()
        dp_step.step(features[rows], labels[rows])
