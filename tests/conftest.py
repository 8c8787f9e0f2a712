from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sangsaeng.server.demo import default_task_path
from sangsaeng.server.demo_data import caravan_columns, write_policy
from sangsaeng.shared.accounting import Mechanism
from sangsaeng.shared.task import TaskSpec, load_task


def task_with(**changes: Any) -> TaskSpec:
    """The demo's Caravan task with top-level fields (or `dp` / `model` dicts) changed."""
    data = load_task(default_task_path()).model_dump()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TaskSpec.from_dict(data)


def opacus_live_epsilon(history: list[Mechanism], delta: float) -> float:
    """Epsilon as Opacus' PrivacyEngine accumulates it while training: one accountant.step
    per optimizer step (an independent path from the project's whole-history replay)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for m in history:
        for _ in range(m.steps):
            accountant.step(noise_multiplier=m.noise_multiplier, sample_rate=m.sample_rate)
    return float(accountant.get_epsilon(delta=delta))


def caravan_policy(directory: Path, partner: str, data_path: Path, cap: float = 100.0) -> Path:
    """A partner policy for the Caravan dataset that allows every column but the id."""
    return write_policy(directory / f"{partner}.policy.toml", partner, "caravan", data_path,
                        cap, caravan_columns())


@pytest.fixture
def caravan_task() -> TaskSpec:
    return load_task(default_task_path())


@pytest.fixture
def small_task() -> TaskSpec:
    """Few numeric columns, one categorical: quick to reason about in unit tests."""
    return TaskSpec.from_dict({
        "dataset": "toy",
        "features": [
            {"name": "age", "min": 18, "max": 100},
            {"name": "income", "min": 0, "max": 1e6},
            {"kind": "categorical", "name": "region", "categories": ["north", "south", 3]},
        ],
        "target": {"name": "churn", "classes": ["no", "yes"]},
        "model": {"kind": "logreg"},
        "rounds": 2, "local_epochs": 1, "batch_size": 8, "learning_rate": 0.1,
        "dp": {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5},
        "min_nodes": 2, "round_timeout": 30,
    })


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def flower_task_identity():  # type: ignore[no-untyped-def]
    """Flower stamps messages with the identity of the running task; outside a SuperNode
    or SuperLink, tests that build Messages by hand set one."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity._run_id = TaskIdentity._node_id = TaskIdentity._task_id = None  # type: ignore[attr-defined]
