from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sangsaeng.client import dp_sgd
from sangsaeng.shared.accounting import Mechanism, epsilon
from sangsaeng.shared.models import build_model, load_model, to_safetensors
from sangsaeng.shared.task import TaskSpec

from .conftest import opacus_live_epsilon, task_with


def toy_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    return x, y


def test_plan_runs_what_opacus_runs(small_task: TaskSpec) -> None:
    # 93 * 8 rows: rows are sampled with q = 1/93, but Opacus' sampler runs int(1/q) = 92
    # steps per epoch and its accountant counts q = 1/92 (an upper bound on the true q).
    n = 93 * small_task.batch_size
    assert int(1 / (1 / 93)) == 92
    planned = dp_sgd.plan(small_task, n)
    assert planned.sample_rate == 1 / 92 >= 1 / math.ceil(n / small_task.batch_size)
    assert planned.steps == 92 * small_task.local_epochs
    model = build_model(small_task, seed=0)
    x, y = toy_data(n, 5)
    assert dp_sgd.train(model, x, y, small_task, planned, seed=1) == planned


def test_reported_epsilon_matches_privacy_engine_accountant() -> None:
    """Two local rounds through Opacus' PrivacyEngine vs our ledger-style history."""
    task = task_with(local_epochs=2, batch_size=32)
    x, y = toy_data(700, 134)
    history: list[Mechanism] = []
    model = build_model(task, seed=0)
    for round_ in range(2):
        history.append(dp_sgd.train(model, x, y, task, dp_sgd.plan(task, len(y)), seed=round_))
    ours = epsilon(history, task.dp.delta)
    assert ours == pytest.approx(opacus_live_epsilon(history, task.dp.delta), rel=0.01)
    assert ours > epsilon(history[:1], task.dp.delta) > 0


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
    whole_run = [planned] * task.rounds
    assert epsilon(whole_run, task.dp.delta) <= 2.0
    assert epsilon(whole_run, task.dp.delta) == pytest.approx(2.0, abs=0.05)


def test_model_round_trips_through_safetensors(caravan_task: TaskSpec) -> None:
    model = build_model(caravan_task, seed=5)
    again = load_model(caravan_task, to_safetensors(model.state_dict()))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items(),
                                strict=True):
        assert k == k2 and torch.equal(v, v2)
