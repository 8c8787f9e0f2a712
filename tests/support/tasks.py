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
                   base_models: tuple[str, ...] = ()) -> Path:
    """A partner policy for the Caravan dataset declaring the demo's schema, accepting
    `base_models`, and (with `ledger`) the dataset's ledger made as `sangsaeng client
    ledger init` does."""
    path = write_policy(directory / f"{partner}.policy.toml", partner, "caravan", data_path,
                        cap, caravan_schema(directory), rows or public_rows(data_path),
                        base_models=base_models)
    if ledger:
        init_ledger(PartnerPolicy.load(path), "caravan")
    return path
