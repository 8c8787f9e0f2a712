"""Bad input through a real deployment: a clear failure, recorded, never a hang."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sangsaeng.server.demo_data import write_partitions
from sangsaeng.server.deployment import LocalDeployment, PartnerNode
from sangsaeng.server.store import FAILED, Store

from .conftest import task_with
from .flower_helpers import processes_using, run_task


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Two partners; 'broken-bank' holds a file with missing values in one column."""
    workdir = tmp_path_factory.mktemp("failures")
    good, broken = write_partitions(["good-bank", "broken-bank"], workdir / "partners")
    table = pd.read_csv(broken)
    table.loc[table.index[::7], "MGODRK"] = np.nan
    table.to_csv(broken, index=False)
    store_url = f"sqlite:///{workdir / 'store.db'}"
    partners = [PartnerNode("good-bank", "caravan", good),
                PartnerNode("broken-bank", "caravan", broken)]
    with LocalDeployment(workdir / "logs", store_url, partners) as dep:
        yield dep, Store(store_url)
    assert processes_using(dep) == []


def test_bad_partner_data_fails_the_run_naming_the_column(deployment) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    flower_run_id, status = run_task(dep, task_with(rounds=2, local_epochs=1, min_nodes=2,
                                                    round_timeout=60))
    assert (status.status, status.sub_status) == ("finished", "failed")
    run = store.get_run(store.run_by_flower_id(flower_run_id).id)
    assert run.status == FAILED and run.model is None
    assert "round 1: 1 of the 2 partner training replies needed arrived" in run.reason
    assert "column 'MGODRK': has missing values (NaN)" in run.reason
    assert "nan" not in run.reason.replace("NaN", "")  # no values, only the kind of problem
    # the good partner trained and spent budget: that stays on record; the broken one did not
    assert {(r.partner, r.round) for r in run.privacy_reports} == {("good-bank", 1)}
    assert [r.round for r in run.rounds] == [1] and run.rounds[0].trained_nodes == 1


def test_too_few_partners_fails_after_the_timeout(deployment) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    flower_run_id, status = run_task(dep, task_with(min_nodes=3, round_timeout=3), timeout=60)
    assert (status.status, status.sub_status) == ("finished", "failed")
    run = store.run_by_flower_id(flower_run_id)
    assert run is not None and run.status == FAILED
    assert "only 2 of the 3 partner nodes the task needs connected within 3 s" in run.reason
    assert store.get_run(run.id).privacy_reports == []


@pytest.mark.parametrize("raw", [
    json.dumps({"dataset": "caravan"}),
    "{not json",
    json.dumps({**task_with().model_dump(), "rounds": -1}),
])
def test_bad_task_reaching_flower_is_refused_and_not_stored(deployment, raw: str) -> None:  # type: ignore[no-untyped-def]
    dep, store = deployment
    before = len(store.list_runs())
    flower_run_id, status = run_task(dep, raw, timeout=60)
    assert (status.status, status.sub_status) == ("finished", "failed")
    assert "invalid task spec" in status.details
    assert store.run_by_flower_id(flower_run_id) is None
    assert len(store.list_runs()) == before
