"""A real SuperLink and two real SuperNodes on loopback, two rounds, then the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sangsaeng.client.data import load_local_data
from sangsaeng.server.demo_data import write_partitions
from sangsaeng.server.deployment import LocalDeployment, PartnerNode
from sangsaeng.server.store import COMPLETED, Store
from sangsaeng.shared.accounting import Mechanism
from sangsaeng.shared.metrics import roc_auc
from sangsaeng.shared.models import load_model

from .conftest import opacus_live_epsilon, task_with
from .flower_helpers import flower_processes, run_task

PARTNERS = ["north-bank", "south-insurance"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("e2e")
    task = task_with(rounds=2, local_epochs=1, min_nodes=2, round_timeout=90)
    paths = write_partitions(PARTNERS, workdir / "partners")
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with LocalDeployment(workdir / "logs", store_url,
                         [PartnerNode(n, "caravan", p) for n, p in zip(PARTNERS, paths,
                                                                       strict=True)]) as dep:
        flower_run_id, status = run_task(dep, task)
    leftovers = dep.live_pids() + flower_processes()
    return task, paths, Store(store_url), flower_run_id, status, leftovers


def test_run_completes_and_is_recorded(finished_run) -> None:  # type: ignore[no-untyped-def]
    task, _, store, flower_run_id, status, _ = finished_run
    assert (status.status, status.sub_status) == ("finished", "completed"), status.details
    run = store.run_by_flower_id(flower_run_id)
    assert run is not None and run.status == COMPLETED and run.reason is None
    assert run.task_sha256 == task.sha256()
    run = store.get_run(run.id)
    assert [r.round for r in run.rounds] == [1, 2]
    for row in run.rounds:
        assert row.trained_nodes == row.evaluated_nodes == 2
        assert 0.5 < row.metrics["accuracy"] <= 1 and row.metrics["loss"] > 0
        assert 0 <= row.metrics["auc"] <= 1


def test_privacy_reports_grow_and_match_the_accountant(finished_run) -> None:  # type: ignore[no-untyped-def]
    task, _, store, flower_run_id, _, _ = finished_run
    run = store.get_run(store.run_by_flower_id(flower_run_id).id)
    assert sorted({r.partner for r in run.privacy_reports}) == sorted(PARTNERS)
    for partner in PARTNERS:
        reports = sorted((r for r in run.privacy_reports if r.partner == partner),
                         key=lambda r: r.round)
        assert [r.round for r in reports] == [1, 2]
        history: list[Mechanism] = []
        for report in reports:
            assert report.noise_multiplier == task.dp.noise_multiplier
            assert report.delta == task.dp.delta and report.dataset == "caravan"
            history.append(Mechanism(noise_multiplier=report.noise_multiplier,
                                     sample_rate=report.sample_rate, steps=report.steps))
            # cumulative over the whole history, as Opacus' accountant gives it
            assert report.epsilon == pytest.approx(
                opacus_live_epsilon(history, task.dp.delta), rel=0.01)
        assert 0 < reports[0].epsilon < reports[1].epsilon


def test_model_loads_and_scores_the_holdouts(finished_run) -> None:  # type: ignore[no-untyped-def]
    task, paths, store, flower_run_id, _, _ = finished_run
    run = store.get_run(store.run_by_flower_id(flower_run_id).id)
    assert run.model is not None
    model = load_model(task, run.model)
    parts = [load_local_data(Path(p), task) for p in paths]
    model.eval()
    with torch.no_grad():
        scores = torch.softmax(model(torch.from_numpy(
            np.concatenate([p.x_holdout for p in parts]))), dim=1)[:, -1].numpy()
    auc = roc_auc(scores, np.concatenate([p.y_holdout for p in parts]))
    # partners average their AUCs; the pooled AUC of the same model is close to it
    assert auc == pytest.approx(run.rounds[-1].metrics["auc"], abs=0.1)


def test_no_process_is_left(finished_run) -> None:  # type: ignore[no-untyped-def]
    assert finished_run[-1] == []
