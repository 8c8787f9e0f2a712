"""Local DP-SGD: Poisson sampling, per-sample clipping, Gaussian noise (client/ghost_step.py,
client/per_sample_step.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian, noise_for_target
from sangsaeng.shared.task import MAX_BATCH, TaskSpec

from .ghost_step import GhostDPSGD, PoissonSampler
from .per_sample_step import PerSampleDPSGD

# Planned batches: q = 1 / k for k among these (an epoch is k steps), the largest q the
# partner's policy allows first.
STEPS_PER_EPOCH = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256)
# A planned batch is the smallest whose noise per unit of progress (see `noise_ratio`) is
# within this factor of the least any batch reaches: larger ones cost compute for < 5 %.
NOISE_TOLERANCE = 1.05
# Local steps of a whole run when the task leaves its epochs to the planner (split evenly
# over its rounds): what the utility benchmark found enough (docs/benchmarks.md, Utility).
RUN_STEPS = 480


class PlanError(ValueError):
    """No mechanism fits the task's budget or the partner's limits; the message says why
    in terms of the task and the policy (public), never of data."""


class PlanLimits(BaseModel):
    """What the partner's policy lets a planned round do (client/policy.py)."""

    model_config = ConfigDict(frozen=True)

    max_sample_rate: float = Field(default=1.0, gt=0, le=1)
    max_local_epochs: int = Field(default=100, ge=1)


def plan(task: TaskSpec, n_train: int, limits: PlanLimits | None = None) -> Mechanism:
    """The mechanism one local round runs on `n_train` rows (the public count): `steps`
    Poisson samples, each taking every row independently with probability q, accounted as
    the sampled Gaussian mechanism with exactly this q (Mironov, Talwar, Zhang 2019). With
    a target epsilon, sigma is chosen so that all rounds of the run, their evaluation
    releases included, stay within it.

    A task's batch_size fixes q = 1 / ceil(n / batch) (an epoch is ceil(n / batch) steps
    and sees each row once in expectation), its local_epochs the steps per round. What
    the task leaves out is planned from its target epsilon: the steps, RUN_STEPS over the
    run; q = 1/k, the smallest the policy allows whose noise per unit of progress is
    within NOISE_TOLERANCE of the least any q reaches (q = 1), or else the largest it
    allows (large batches, as De et al. 2022, arXiv:2204.13650, found best for DP-SGD).
    """
    limits = limits or PlanLimits()
    if task.batch_size is not None:
        k = math.ceil(n_train / task.batch_size)
        return _mechanism(task, k, _planned_steps(task, k, limits))
    # every k whose q = 1/k the policy allows, no batch past MAX_BATCH rows, and (epochs
    # planned too) no more epochs a round than the policy allows
    steps = _planned_steps(task)
    allowed = [k for k in STEPS_PER_EPOCH
               if 1 / k <= limits.max_sample_rate and n_train / k <= MAX_BATCH and k <= n_train
               and (steps is None or steps / k <= limits.max_local_epochs)]
    if not allowed:
        raise PlanError("no planned batch fits the partner's limits on sampling rate and "
                        "epochs for this dataset")
    # The least noise per unit of progress any batch reaches: q = 1, every row each step.
    floor = noise_ratio(_mechanism(task, 1, steps))
    plans: dict[int, Mechanism] = {}

    def near_floor(i: int) -> bool:
        if allowed[i] not in plans:
            plans[allowed[i]] = _mechanism(task, allowed[i], steps)
        return noise_ratio(plans[allowed[i]]) <= NOISE_TOLERANCE * floor

    # noise_ratio grows with k: bisect for the largest k still near the floor; if none is,
    # the largest q the policy allows
    low, high = 0, len(allowed) - 1
    if near_floor(low):
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if near_floor(mid) else (low, mid - 1)
    return plans[allowed[low]]


def noise_ratio(mechanism: Mechanism) -> float:
    """σ / (q √steps): the noise of a round's summed updates over their signal, up to the
    data's own factors (Σ of T steps: noise σC√T per coordinate against T·qn clipped
    gradients of norm up to C; the learning rate scales both). Lower is more progress per
    noise for the same ε; it falls towards a floor as q grows (the sub-sampled mechanism
    tends to a Gaussian one)."""
    return mechanism.noise_multiplier / (mechanism.sample_rate * math.sqrt(
        max(mechanism.steps, 1)))


def expected_batch_size(task: TaskSpec, mechanism: Mechanism, n_train: int) -> float:
    """What a step's clipped, noised sum is divided by: the task's batch_size, or for a
    planned one q × n_train, the public row count the plan was made from."""
    return task.batch_size if task.batch_size is not None else mechanism.sample_rate * n_train


def _planned_steps(task: TaskSpec, steps_per_epoch: int | None = None,
                   limits: PlanLimits | None = None) -> int | None:
    """Steps a round when the planner picks them (None when the task's local_epochs fix
    them): RUN_STEPS over the run, and with a known epoch length no more epochs than the
    policy allows."""
    if task.local_epochs is not None:
        return None
    steps = math.ceil(RUN_STEPS / task.rounds)
    if steps_per_epoch is not None and limits is not None:
        steps = min(steps, steps_per_epoch * limits.max_local_epochs)
    return steps


def _mechanism(task: TaskSpec, steps_per_epoch: int, steps: int | None) -> Mechanism:
    """q = 1 / steps_per_epoch for `steps` steps (None: the task's local epochs), and σ:
    the task's, or the one that keeps the whole run within its target epsilon."""
    sample_rate = 1 / steps_per_epoch
    if steps is None:
        assert task.local_epochs is not None  # only planned epochs leave steps to us
        steps = steps_per_epoch * task.local_epochs
    sigma = task.dp.noise_multiplier
    if sigma is None:
        target = task.dp.target_epsilon
        assert target is not None  # TaskSpec guarantees one of the two
        # each round's evaluation release, and the base model's in round 0 when there is one
        releases = task.rounds + (task.base_model is not None)
        evaluations = (gaussian(task.dp.evaluation_noise_multiplier),) * releases
        try:
            sigma = noise_for_target(target, task.dp.delta, sample_rate, steps * task.rounds,
                                     fixed=evaluations)
        except ValueError:
            spent = epsilon(evaluations, task.dp.delta)
            if spent < target:
                raise
            raise PlanError(
                f"the run's {releases} evaluation releases (noise multiplier "
                f"{task.dp.evaluation_noise_multiplier:g}) alone spend epsilon {spent:.2f}, "
                f"over the target {target:g}: raise dp.evaluation_noise_multiplier or "
                "dp.target_epsilon, or run fewer rounds") from None
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
          mechanism: Mechanism, seed: int | None = None, *, round_: int = 1,
          batch_size: float | None = None, gradient_canaries: torch.Tensor | None = None,
          after_step: Callable[[int], None] | None = None) -> None:
    """Run `mechanism` in place on `model`: its steps of DP-SGD, each on a Poisson sample
    of the rows with its rate and noise multiplier, as round `round_` of the run (where
    the task's learning-rate schedule is). Every step runs, an empty sample too (its
    update is noise alone), so the accountant's step count is the truth. The task's class
    weights scale each clipped gradient (never above the clipping bound). `batch_size`
    is what the sums are divided by: by default the task's (expected_batch_size for a
    planned one).
    `seed` makes sampling and noise reproducible (tests only: the default draws both
    from the OS).
    For a white-box privacy audit (sangsaeng/empirical/): `gradient_canaries` are further
    rows, one flat per-example gradient each, sampled with the data rows and clipped and
    noised with them by the same step; `after_step(i)` sees the model after each step."""
    # Weights drifting under DP noise produce subnormal floats, which x86 computes ~100x
    # slower; flushing them to zero changes nothing a float32 model can tell apart.
    torch.set_flush_denormal(True)
    features, labels = torch.from_numpy(x), torch.from_numpy(y)
    n = len(labels)
    canaries = 0 if gradient_canaries is None else len(gradient_canaries)
    sample = PoissonSampler(n + canaries, mechanism.sample_rate, seed)
    weights = (None if task.class_weights is None
               else torch.tensor(task.class_weights, dtype=features.dtype))
    # The clipped, noised sum is divided by a fixed batch size, not the realised one, as
    # Opacus does (opacus/optimizers/optimizer.py, DPOptimizer.scale_grad): here the task's
    # batch_size, or a planned one (expected_batch_size: q times the public row count), both
    # public, where Opacus takes int(q·n), which depends on the rows.
    batch_size = task.batch_size if batch_size is None else batch_size
    if batch_size is None:
        raise ValueError("the task's batch is planned: pass the plan's expected_batch_size")
    # a stack of Linear and ReLU layers takes the fast ghost step; adapters the general one
    step = GhostDPSGD if isinstance(model, nn.Sequential) else PerSampleDPSGD
    if canaries and step is not GhostDPSGD:
        raise ValueError("gradient canaries need a model of Linear and ReLU layers")
    dp_step = step(model, lr=task.learning_rate, max_grad_norm=task.dp.max_grad_norm,
                   noise_multiplier=mechanism.noise_multiplier,
                   expected_batch_size=batch_size, seed=seed, class_weights=weights)
    scale = dp_step.scale  # lr / expected batch size: the schedule scales the lr
    model.train()
    for i in range(mechanism.steps):
        dp_step.scale = scale * learning_rate_factor(task, round_, i, mechanism.steps)
        rows = sample()
        if canaries:
            assert isinstance(dp_step, GhostDPSGD) and gradient_canaries is not None
            data = rows[rows < n]
            dp_step.step(features[data], labels[data], gradient_canaries[rows[rows >= n] - n])
        else:
            dp_step.step(features[rows], labels[rows])
        if after_step is not None:
            after_step(i)
