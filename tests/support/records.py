"""A coordinator's records as the tests set them up: the catalogue entry of the Caravan
table, a finished run as the ServerApp records one, and a stop through the API."""

from __future__ import annotations

import time
from pathlib import Path

from sangsaeng.api_client import SangsaengApi
from sangsaeng.server.db import Store
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, OPEN
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.models import build_model, to_safetensors
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import RunOut

from .tasks import task_with

TASK = task_with(rounds=2, local_epochs=1, min_nodes=2, round_timeout=300)


def finished_run(store: Store, owner: str) -> int:
    """A completed two-round run as the ServerApp records one."""
    run_id = lifecycle.create(store, TASK, owner)
    lifecycle.claim(store, run_id, 10**12 + run_id)  # an id Flower never gave: never reconciled
    for round_ in (1, 2):
        store.runs.record_round(run_id, round_, trained_nodes=2, evaluated_nodes=2,
                                metrics={"loss": 0.3, "accuracy": 0.9,
                                         "auc": 0.6 + round_ / 100})
        store.privacy.add(run_id, round_, [(7, PrivacyReport(
            partner="north-bank", dataset="caravan", noise_multiplier=1.0, sample_rate=0.02,
            steps=50 * round_, evaluation_noise_multiplier=1e6, trained_parameters=100,
            delta=1e-5, epsilon=round_ * 1.5, lifetime_epsilon=round_ * 1.5,
            epsilon_cap=10.0, ledger_seq=2 * round_, ledger_hash="ab" * 32))])
    lifecycle.end(store, run_id, COMPLETED, model=to_safetensors(build_model(TASK).state_dict()))
    return run_id


def register_caravan(store: Store) -> None:
    """The catalogue entry of the Caravan table, as the operator registers it."""
    store.catalogue.put("caravan", DatasetEntry(name="caravan", features=TASK.features,
                                                target=TASK.target, partners=3,
                                                rows=5822).model_dump_json())


def until_ended(api: SangsaengApi, run_id: int, timeout: float) -> RunOut:
    """The run once it has ended, polling the API every second (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while (run := api.run(run_id)).status in OPEN:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
        time.sleep(1)
    return run


def api_stop(url: str, token: str, run_id: int, ca_file: Path | None) -> None:
    with SangsaengApi(url, token, ca_file=ca_file) as client:
        client.stop(run_id)
