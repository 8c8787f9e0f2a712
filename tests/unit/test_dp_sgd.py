from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from sangsaeng.client import dp_sgd, ghost_step
from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian
from sangsaeng.shared.models import build_model, load_model, to_safetensors
from sangsaeng.shared.task import TaskSpec, TaskSpecError

from ..support.tasks import task_with


def toy_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    return x, y


@pytest.mark.parametrize("n, steps_per_epoch", [(93 * 8, 93), (93 * 8 + 1, 94), (5, 1)])
def test_plan_samples_one_batch_in_expectation_per_step(small_task: TaskSpec, n: int,
                                                        steps_per_epoch: int) -> None:
    assert small_task.batch_size == 8 and small_task.local_epochs is not None
    planned = dp_sgd.plan(small_task, n)
    assert planned.sample_rate == 1 / steps_per_epoch
    assert planned.steps == steps_per_epoch * small_task.local_epochs
    assert planned.sample_rate * n <= small_task.batch_size


def test_train_runs_every_planned_step_on_poisson_samples(monkeypatch: pytest.MonkeyPatch,
                                                          small_task: TaskSpec) -> None:
    """The accountant is told `steps` sampled Gaussian mechanisms at rate q: that is what
    runs, empty samples included (their update is the noise alone)."""
    sizes: list[int] = []
    real_step = ghost_step.GhostDPSGD.step

    def counted(self: ghost_step.GhostDPSGD, x: torch.Tensor, y: torch.Tensor) -> None:
        sizes.append(len(y))
        real_step(self, x, y)

    monkeypatch.setattr(ghost_step.GhostDPSGD, "step", counted)
    assert small_task.batch_size is not None
    n = 40 * small_task.batch_size
    x, y = toy_data(n, 5)
    task = small_task.model_copy(update={"local_epochs": 30})
    planned = dp_sgd.plan(task, n)
    dp_sgd.train(build_model(task, seed=0), x, y, task, planned, seed=2)
    assert len(sizes) == planned.steps == 1200
    assert np.mean(sizes) == pytest.approx(planned.sample_rate * n, rel=0.05)
    q = planned.sample_rate  # binomial sizes: Poisson sampling, not fixed batches
    assert np.var(sizes) == pytest.approx(n * q * (1 - q), rel=0.15)


def test_training_changes_weights_and_learns() -> None:
    task = task_with(dp={"noise_multiplier": 0.5}, local_epochs=5, batch_size=64,
                     model={"kind": "logreg", "hidden": []})
    x, y = toy_data(2000, 134, seed=3)
    model = build_model(task, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dp_sgd.train(model, x, y, task, dp_sgd.plan(task, len(y)), seed=0)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    assert accuracy > 0.8  # the signal is one feature; DP noise at sigma=0.5 leaves it learnable


def test_target_epsilon_sets_sigma_for_the_whole_run() -> None:
    task = task_with(dp={"noise_multiplier": None, "target_epsilon": 2.0}, rounds=4)
    planned = dp_sgd.plan(task, 1500)
    whole_run = [planned, gaussian(task.dp.evaluation_noise_multiplier)] * task.rounds
    assert epsilon(whole_run, task.dp.delta) <= 2.0
    assert epsilon(whole_run, task.dp.delta) == pytest.approx(2.0, abs=0.05)


def test_a_target_epsilon_counts_the_base_models_evaluation_too() -> None:
    """With a base model, round 0 evaluates it: one more release the target covers (it
    was left out: ε 1.066 for a target of 1)."""
    task = task_with(dp={"noise_multiplier": None, "target_epsilon": 2.0}, rounds=4,
                     base_model="b" * 64)
    planned = dp_sgd.plan(task, 1500)
    evaluation = gaussian(task.dp.evaluation_noise_multiplier)
    whole_run = [evaluation] + [planned, evaluation] * task.rounds
    assert 2.0 - 0.05 <= epsilon(whole_run, task.dp.delta) <= 2.0


def test_model_round_trips_through_safetensors(caravan_task: TaskSpec) -> None:
    model = build_model(caravan_task, seed=5)
    again = load_model(caravan_task, to_safetensors(model.state_dict()))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items(),
                                strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_class_weights_reach_the_step_and_scale_the_clipped_gradients(
        small_task: TaskSpec) -> None:
    """One step from the same start with the same seed (the same sample and noise), with
    and without class weights: the models differ by exactly lr / B times the difference of
    the weighted and unweighted clipped sums."""
    x, y = toy_data(200, 5, seed=1)
    x *= 4  # gradients beyond the clipping bound: most rows are clipped
    task = small_task.model_copy(update={"class_weights": [0.2, 1.0]})
    mechanism = Mechanism(noise_multiplier=1.0, sample_rate=1.0, steps=1)
    start = build_model(task, seed=0)
    weighted, plain = copy.deepcopy(start), copy.deepcopy(start)
    dp_sgd.train(weighted, x, y, task, mechanism, seed=4)
    dp_sgd.train(plain, x, y, small_task, mechanism, seed=4)
    layers = ghost_step.linear_layers(start)
    args = (torch.from_numpy(x), torch.from_numpy(y), task.dp.max_grad_norm)
    difference = [a - b for a, b in zip(
        ghost_step.clipped_sum(layers, *args, torch.tensor([0.2, 1.0])),
        ghost_step.clipped_sum(layers, *args), strict=True)]
    assert task.batch_size is not None
    scale = task.learning_rate / task.batch_size
    for w, p, d in zip(weighted.parameters(), plain.parameters(), difference, strict=True):
        assert d.abs().max() > 1e-3  # the weights matter here
        torch.testing.assert_close(w - p, -scale * d, rtol=1e-4, atol=1e-6)


def test_cosine_schedule_runs_from_the_learning_rate_to_its_final_fraction() -> None:
    task = task_with(rounds=3, learning_rate_schedule={"kind": "cosine", "final": 0.2})
    steps = 10
    factors = [dp_sgd.learning_rate_factor(task, r, i, steps)
               for r in range(1, 4) for i in range(steps)]
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))  # falls every step
    assert factors[(len(factors) - 1) // 2] == pytest.approx(0.6, abs=0.05)  # halfway
    # a round number past the run's (a coordinator's choice) stays at the final rate
    assert dp_sgd.learning_rate_factor(task, 9, 0, steps) == pytest.approx(0.2)
    constant = task_with(rounds=3)
    assert {dp_sgd.learning_rate_factor(constant, r, i, steps)
            for r in range(1, 4) for i in range(steps)} == {1.0}


def test_train_takes_each_step_at_the_scheduled_learning_rate(
        monkeypatch: pytest.MonkeyPatch, small_task: TaskSpec) -> None:
    scales = recorded_scales(monkeypatch)
    task = small_task.model_copy(update={"learning_rate_schedule": small_task
                                         .learning_rate_schedule.model_copy(
                                             update={"kind": "cosine", "final": 0.1})})
    x, y = toy_data(80, 5)
    mechanism = Mechanism(noise_multiplier=1.0, sample_rate=0.1, steps=6)
    dp_sgd.train(build_model(task, seed=0), x, y, task, mechanism, seed=0, round_=2)
    assert task.batch_size is not None
    base = task.learning_rate / task.batch_size
    assert scales == pytest.approx([base * dp_sgd.learning_rate_factor(task, 2, i, 6)
                                    for i in range(6)])
    assert scales[0] < base  # round 2 of 2 starts below the full rate


def planned_task(**changes: object) -> TaskSpec:
    """The demo's task with batch and epochs left to the planner and a target epsilon."""
    return task_with(**{"batch_size": None, "local_epochs": None,
                        "dp": {"noise_multiplier": None, "target_epsilon": 5.0},
                        **changes})


@pytest.mark.parametrize(("target", "rounds", "n", "limits"), [
    (5.0, 5, 1520, dp_sgd.PlanLimits()),
    (1.0, 3, 1520, dp_sgd.PlanLimits()),
    (8.0, 10, 50_000, dp_sgd.PlanLimits(max_sample_rate=0.1, max_local_epochs=4)),
])
def test_a_planned_round_keeps_the_run_within_its_target_and_the_limits(
        target: float, rounds: int, n: int, limits: dp_sgd.PlanLimits) -> None:
    """The whole run — every round's planned training and evaluation release — recomputed
    by the accountant stays within the target; q and the epochs stay within the policy."""
    task = planned_task(rounds=rounds, dp={"noise_multiplier": None, "target_epsilon": target})
    planned = dp_sgd.plan(task, n, limits)
    whole_run = [planned, gaussian(task.dp.evaluation_noise_multiplier)] * rounds
    spent = epsilon(whole_run, task.dp.delta)
    assert spent <= target
    assert spent == pytest.approx(target, abs=0.05)  # and spends it
    assert planned.sample_rate <= limits.max_sample_rate
    assert planned.steps * planned.sample_rate <= limits.max_local_epochs + 1e-9
    assert planned.steps == math.ceil(dp_sgd.RUN_STEPS / rounds)
    assert dp_sgd.expected_batch_size(task, planned, n) == pytest.approx(
        planned.sample_rate * n)


def test_the_planner_picks_a_large_batch_near_the_least_noise_per_progress() -> None:
    """Among q = 1/k, the smallest batch whose noise per unit of progress is within the
    tolerance of the least any batch reaches (q = 1, all rows), and no smaller one is."""
    task = planned_task(rounds=5)
    n = 1520
    planned = dp_sgd.plan(task, n)
    k = round(1 / planned.sample_rate)
    best = dp_sgd.noise_ratio(dp_sgd.plan(task.model_copy(update={"batch_size": n}), n))
    assert dp_sgd.noise_ratio(planned) <= dp_sgd.NOISE_TOLERANCE * best
    smaller = [c for c in dp_sgd.STEPS_PER_EPOCH if c > k][0]
    next_batch = dp_sgd.plan(task.model_copy(update={"batch_size": math.ceil(n / smaller)}), n)
    assert round(1 / next_batch.sample_rate) == smaller
    assert dp_sgd.noise_ratio(next_batch) > dp_sgd.NOISE_TOLERANCE * best
    assert planned.sample_rate * n > 64  # larger than the demo's old fixed batch
    # what the planner chose is exactly what a task fixing that batch would run
    assert planned == dp_sgd.plan(task.model_copy(update={"batch_size": math.ceil(n / k)}), n)


def test_what_the_task_fixes_the_planner_keeps() -> None:
    n = 1520
    batch_fixed = dp_sgd.plan(planned_task(batch_size=100, rounds=4), n)
    assert batch_fixed.sample_rate == 1 / math.ceil(n / 100)
    assert batch_fixed.steps == math.ceil(dp_sgd.RUN_STEPS / 4)  # epochs still planned
    epochs_fixed = dp_sgd.plan(planned_task(local_epochs=3, rounds=4), n)
    assert epochs_fixed.steps == 3 * round(1 / epochs_fixed.sample_rate)  # 3 epochs a round
    both = dp_sgd.plan(planned_task(batch_size=100, local_epochs=3, rounds=4), n)
    assert (both.sample_rate, both.steps) == (1 / 16, 48)
    # a fixed batch with planned epochs keeps within the policy's epochs too
    capped = dp_sgd.plan(planned_task(batch_size=760, rounds=2), n,
                         dp_sgd.PlanLimits(max_local_epochs=5))
    assert (capped.sample_rate, capped.steps) == (1 / 2, 10)


def test_a_planned_batch_needs_a_budget_and_a_feasible_limit() -> None:
    with pytest.raises(TaskSpecError, match="batch_size and local_epochs can be planned only "
                                            "from a budget"):
        task_with(batch_size=None, local_epochs=None)
    with pytest.raises(TaskSpecError, match="local_epochs can be planned only from a budget"):
        task_with(local_epochs=None)
    with pytest.raises(dp_sgd.PlanError, match="no planned batch fits the partner's limits"):
        dp_sgd.plan(planned_task(rounds=1), 1520,
                    dp_sgd.PlanLimits(max_sample_rate=1e-3, max_local_epochs=1))
    with pytest.raises(dp_sgd.PlanError, match=r"the run's 10 evaluation releases \(noise "
                                               r"multiplier 10\) alone spend epsilon "
                                               r"1\.\d\d, over the target 1"):
        dp_sgd.plan(planned_task(rounds=10, dp={"noise_multiplier": None,
                                                "target_epsilon": 1.0}), 1520)


def test_train_divides_by_the_planned_expected_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    scales = recorded_scales(monkeypatch)
    task = planned_task(rounds=5)
    x, y = toy_data(200, 134)
    mechanism = Mechanism(noise_multiplier=2.0, sample_rate=0.25, steps=3)
    with pytest.raises(ValueError, match="pass the plan's expected_batch_size"):
        dp_sgd.train(build_model(task, seed=0), x, y, task, mechanism, seed=0)
    batch = dp_sgd.expected_batch_size(task, mechanism, 200)
    dp_sgd.train(build_model(task, seed=0), x, y, task, mechanism, seed=0, batch_size=batch)
    assert scales == [task.learning_rate / 50] * 3


def test_under_tight_limits_the_planner_takes_the_largest_batch_they_allow() -> None:
    """When no allowed batch comes near the least noise, the largest allowed is the least
    noisy: the planner takes it rather than a smaller one."""
    task = planned_task(rounds=5, dp={"noise_multiplier": None, "target_epsilon": 8.0})
    limits = dp_sgd.PlanLimits(max_sample_rate=1 / 24)
    planned = dp_sgd.plan(task, 1520, limits)
    assert planned.sample_rate == 1 / 24
    free = dp_sgd.plan(task, 1520)
    assert dp_sgd.noise_ratio(planned) > dp_sgd.NOISE_TOLERANCE * dp_sgd.noise_ratio(free)


def recorded_scales(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The step size (`scale`) of every ghost step train takes from here on, in order."""
    scales: list[float] = []
    real_step = ghost_step.GhostDPSGD.step

    def recorded(self: ghost_step.GhostDPSGD, x: torch.Tensor, y: torch.Tensor) -> None:
        scales.append(self.scale)
        real_step(self, x, y)

    monkeypatch.setattr(ghost_step.GhostDPSGD, "step", recorded)
    return scales
