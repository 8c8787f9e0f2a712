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
from sangsaeng.server.runs.states import FAILED, STOPPED

from ..support.flower import run_task
from ..support.processes import flower_processes
from ..support.tasks import caravan_policy, task_with


def _set(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def damage(table: pd.DataFrame) -> pd.DataFrame:
        table[column] = table[column].astype(object)
        table.loc[table.index[::7], column] = value
        return table
    return damage


# Each broken partner's file, and the error it must produce (a column and a kind of problem).
BROKEN: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "nan-bank": (_set("MGODRK", np.nan), "column 'MGODRK': has missing values (NaN)"),
    "range-bank": (_set("MAANTHUI", 11), "column 'MAANTHUI': has values outside the declared "
                                         "range [1.0, 10.0]"),
    "category-bank": (_set("MOSTYPE", 42), "column 'MOSTYPE': has values outside the declared "
                                           "categories"),
    "type-bank": (_set("MGEMLEEF", "zq-senior"), "column 'MGEMLEEF': must be numeric"),
    "missing-bank": (lambda t: t.drop(columns="PPERSAUT"),
                     "column 'PPERSAUT': is missing from the table"),
    "empty-bank": (lambda t: t.iloc[0:0], "table: has no rows"),
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """'good-bank' holds a valid file; every other partner a broken one (or none at all)."""
    workdir = tmp_path_factory.mktemp("failures")
    names = ["good-bank", *BROKEN]
    paths = write_partitions(names, workdir / "partners")
    for path, (damage, _) in zip(paths[1:], BROKEN.values(), strict=True):
        reader = pd.read_parquet if path.suffix == ".parquet" else pd.read_csv
        damage(reader(path)).to_csv(path, index=False)
    partners = [PartnerNode(n, caravan_policy(workdir / "partners", n, p))
                for n, p in zip(names, paths, strict=True)]
    partners.append(PartnerNode("nofile-bank", caravan_policy(workdir / "partners", "nofile-bank",
                                                              workdir / "nowhere.csv")))
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with LocalDeployment(workdir / "logs", store_url, partners) as dep:
        yield dep, Store(store_url)
    assert dep.live_pids() == [] and flower_processes() == []


def test_bad_partner_data_fails_the_run_naming_each_problem(deployment) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    n = len(dep.partners)
    flower_run_id, status = run_task(dep, store, task_with(rounds=2, local_epochs=1, min_nodes=n,
                                                    round_timeout=120))
    assert (status.status, status.sub_status) == ("finished", "failed")
    run = store.runs.get(store.runs.by_flower_id(flower_run_id).id)
    assert run.status == FAILED and run.model is None
    assert f"round 1: 1 of the {n} partner training replies needed arrived" in run.reason
    for _, expected in BROKEN.values():
        assert expected in run.reason
    assert "table: data file does not exist" in run.reason
    # kinds of problems only: none of the planted values, nor any path, is in the reason
    for leaked in ("zq-senior", "42", "11", "nowhere", str(Path.home())):
        assert leaked not in run.reason
    # the good partner trained and spent budget: that stays on record; no broken one did
    assert {(r.partner, r.round) for r in run.privacy_reports} == {("good-bank", 1)}
    assert [r.round for r in run.rounds] == [1] and run.rounds[0].trained_nodes == 1


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

