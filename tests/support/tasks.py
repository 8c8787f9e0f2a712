"""Tasks and partner policies the tests build on: the demo's Caravan task with changes,
a policy for it, and Opacus' own ε for a history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sangsaeng.client.ledger import init_ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.data import default_task_path, public_rows, write_policy, write_schema
from sangsaeng.shared.accounting import Mechanism
from sangsaeng.shared.task import TaskSpec, load_task

# The training the tests were written for: the demo task's before it took the batches
# and epochs a planner picks (bench/utility.py). Tests pin it, so that the demo's
# training can change without changing what they check.
TEST_TRAINING: dict[str, Any] = {
    "batch_size": 64, "local_epochs": 2, "learning_rate": 1.0, "class_weights": None,
    "dp": {"noise_multiplier": 1.0, "target_epsilon": None, "max_grad_norm": 1.0,
           "delta": 1e-5}}


def task_with(**changes: Any) -> TaskSpec:
    """The demo's Caravan task (its columns and model) with TEST_TRAINING, and top-level
    fields (or `dp` / `model` dicts) changed."""
    data = load_task(default_task_path()).model_dump()
    for fields in (TEST_TRAINING, changes):
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    return TaskSpec.from_dict(data)


def opacus_live_epsilon(history: list[Mechanism], delta: float) -> float:
    """Epsilon as Opacus' PrivacyEngine with its PRV accountant accumulates it while
    training: one accountant.step per optimizer step, its certified upper bound (a
    different library, method and path from the project's PLD over the whole history)."""
    import warnings

    from opacus.accountants import PRVAccountant

    accountant = PRVAccountant()
    for m in history:
        for _ in range(m.steps):
            accountant.step(noise_multiplier=m.noise_multiplier, sample_rate=m.sample_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # q = 1 releases: log(0) on a discarded branch
        return float(accountant.get_epsilon(delta=delta))


def caravan_schema(directory: Path) -> Path:
    """The Caravan dataset's catalogue entry (every column but the id, as the demo task
    declares them): the schema partners declare in their policies."""
    return write_schema(directory / "caravan.catalogue.json", load_task(default_task_path()), [])


def caravan_policy(directory: Path, partner: str, data_path: Path, cap: float = 100.0,
                   ledger: bool = True, rows: int | None = None,
                   base_models: tuple[str, ...] = (), max_local_epochs: int = 10) -> Path:
    """A partner policy for the Caravan dataset declaring the demo's schema, accepting
    `base_models`, and (with `ledger`) the dataset's ledger made as `sangsaeng client
    ledger init` does. Its limits are the ones the tests were written for (the demo
    partners' before they made room for planned batches): q <= 0.1, 10 local epochs."""
    path = write_policy(directory / f"{partner}.policy.toml", partner, "caravan", data_path,
                        cap, caravan_schema(directory), rows or public_rows(data_path),
                        base_models=base_models, max_sample_rate=0.1,
                        max_local_epochs=max_local_epochs)
    if ledger:
        init_ledger(PartnerPolicy.load(path), "caravan")
    return path
