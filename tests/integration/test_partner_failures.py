"""Bad input through a real deployment: a clear failure, recorded, never a hang."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sangsaeng.demo.data import write_partitions
from sangsaeng.server.db import Store
from sangsaeng.server.deployment.flower_processes import LocalDeployment, PartnerNode
from sangsaeng.server.flower.control import FlowerControl, wait_for_run
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, FAILED, STOPPED

from ..support.flower import run_task
from ..support.processes import flower_processes
from ..support.tasks import caravan_policy, task_with


def _set(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def damage(table: pd.DataFrame) -> pd.DataFrame:
        table[column] = table[column].astype(object)
        table.loc[table.index[::7], column] = value
        return table
    return damage


# Each damaged partner's file: values a real table has (and a probe would plant). None of
# them may change whether the partner answers (issue 15, finding 3).
DAMAGED: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "nan-bank": _set("MGODRK", np.nan),
    "range-bank": _set("MAANTHUI", 11),
    "category-bank": _set("MOSTYPE", 42),
    "type-bank": _set("MGEMLEEF", "zq-senior"),
    "label-bank": _set("Purchase", "Maybe"),
    "empty-bank": lambda t: t.iloc[0:0],
}
# Schema facts the partner declared itself: these are refused, naming the column.
BROKEN: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "missing-bank": (lambda t: t.drop(columns="PPERSAUT"),
                     "column 'PPERSAUT': is missing from the table"),
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """'good-bank' holds a valid file; the others a damaged one, a broken one, or none."""
    workdir = tmp_path_factory.mktemp("failures")
    damages = [*DAMAGED.values(), *(damage for damage, _ in BROKEN.values())]
    names = ["good-bank", *DAMAGED, *BROKEN]
    paths = write_partitions(names, workdir / "partners")
    for path, damage in zip(paths[1:], damages, strict=True):
        reader = pd.read_parquet if path.suffix == ".parquet" else pd.read_csv
        damage(reader(path)).to_csv(path, index=False)
    partners = [PartnerNode(n, caravan_policy(workdir / "partners", n, p))
                for n, p in zip(names, paths, strict=True)]
    partners.append(PartnerNode("nofile-bank", caravan_policy(workdir / "partners", "nofile-bank",
                                                              workdir / "nowhere.csv", rows=900)))
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with LocalDeployment(workdir / "logs", store_url, partners) as dep:
        yield dep, Store(store_url)
    assert dep.live_pids() == [] and flower_processes() == []


def test_damaged_values_change_no_answer_and_schema_problems_are_named(deployment) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    answering = 1 + len(DAMAGED)
    flower_run_id, status = run_task(dep, store, task_with(rounds=1, local_epochs=1,
                                                           batch_size=4, min_nodes=answering,
                                                           round_timeout=120))
    run = store.runs.get(store.runs.by_flower_id(flower_run_id).id)
    assert (status.status, status.sub_status) == ("finished", "completed"), run.reason
    assert run.status == COMPLETED
    # every partner with a damaged file trained, reported and evaluated like the good one
    assert {r.partner for r in run.privacy_reports} == {"good-bank", *DAMAGED}
    [row] = run.rounds
    assert (row.trained_nodes, row.evaluated_nodes) == (answering, answering)
    # the two schema problems are named, kinds only: no value, nor any path
    assert sorted(row.partner_errors) == sorted(
        [expected for _, expected in BROKEN.values()] + ["table: data file does not exist"])
    for leaked in ("zq-senior", "42", "11", "Maybe", "nowhere", str(Path.home())):
        assert not any(leaked in e for e in row.partner_errors)


def test_too_few_partners_fails_after_the_timeout(deployment) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    n = len(dep.partners)
    flower_run_id, status = run_task(dep, store, task_with(min_nodes=n + 1, round_timeout=3),
                                     timeout=60)
    assert (status.status, status.sub_status) == ("finished", "failed")
    run = store.runs.by_flower_id(flower_run_id)
    assert run is not None and run.status == FAILED
    assert f"only {n} of the {n + 1} partner nodes the task needs connected within 3 s" in (
        run.reason)
    assert store.runs.get(run.id).privacy_reports == []


@pytest.mark.parametrize("raw", [
    json.dumps({"dataset": "caravan"}),
    "{not json",
    json.dumps({**task_with().model_dump(), "rounds": -1}),
])
def test_bad_task_reaching_flower_is_refused_and_not_stored(deployment, raw: str) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    before = len(store.runs.list())
    flower_run_id, status = run_task(dep, store, raw, timeout=60)
    assert (status.status, status.sub_status) == ("finished", "failed")
    assert "invalid task spec" in status.details
    assert store.runs.by_flower_id(flower_run_id) is None
    assert len(store.runs.list()) == before


def test_a_valid_task_started_behind_the_coordinators_back_is_refused(deployment) -> None:  # type: ignore[no-untyped-def]
    """Straight into Flower, with no record in the store: the ServerApp does not run it."""
    dep, store = deployment
    before = len(store.runs.list())
    flower_run_id, status = run_task(dep, store, task_with().to_json(), timeout=60)
    assert (status.status, status.sub_status) == ("finished", "failed")
    assert "no record of this run in the coordinator's store" in status.details
    assert store.runs.by_flower_id(flower_run_id) is None and len(store.runs.list()) == before


def test_a_run_stopped_before_flower_started_it_is_not_run(deployment) -> None:  # type: ignore[no-untyped-def]
    """The race of a stop with a start: the store closed the run first, so its ServerApp
    refuses it (no partner is asked to train, nothing is spent)."""
    dep, store = deployment
    task = task_with(rounds=1, local_epochs=1, min_nodes=1, round_timeout=30)
    run_id = lifecycle.create(store, task, owner="acme")
    lifecycle.end(store, run_id, STOPPED, "stopped before Flower started it")
    control = FlowerControl(dep.address)
    try:
        flower_run_id = control.start_run(task.to_json(), run_id)
        status = wait_for_run(control, flower_run_id, timeout=60)
    finally:
        control.close()
    assert (status.status, status.sub_status) == ("finished", "failed")
    assert f"run {run_id} has ended or belongs to another Flower run" in status.details
    run = store.runs.get(run_id)
    assert (run.status, run.flower_run_id, run.rounds) == (STOPPED, None, [])

