"""Real SuperLink and SuperNodes on loopback: a two-round run, then the store and ledgers.

Three partners: two with ample caps, and 'frugal-bank', whose cap allows exactly one
round of this task — so it refuses the two-round run, and of two one-round runs started
at the same time, exactly one trains on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sangsaeng.client import dp_sgd
from sangsaeng.client.data import load_local_data
from sangsaeng.client.ledger import COMMIT, RESERVE, Ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.server.control import FlowerControl, wait_for_run
from sangsaeng.server.demo_data import write_partitions
from sangsaeng.server.deployment import LocalDeployment, PartnerNode
from sangsaeng.server.store import COMPLETED, Store
from sangsaeng.shared.accounting import Mechanism, epsilon
from sangsaeng.shared.metrics import roc_auc
from sangsaeng.shared.models import load_model

from .conftest import caravan_policy, opacus_live_epsilon, task_with
from .flower_helpers import flower_processes, run_task

GENEROUS = ["north-bank", "south-insurance"]
TASK = task_with(rounds=2, local_epochs=1, min_nodes=2, round_timeout=90)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("e2e")
    paths = write_partitions([*GENEROUS, "frugal-bank"], workdir / "partners")
    one_round = dp_sgd.plan(TASK, len(load_local_data(paths[2], TASK).y_train))
    cap = (epsilon([one_round], TASK.dp.delta) + epsilon([one_round] * 2, TASK.dp.delta)) / 2
    policies = [caravan_policy(workdir / "partners", n, p) for n, p in zip(GENEROUS, paths,
                                                                            strict=False)]
    policies.append(caravan_policy(workdir / "partners", "frugal-bank", paths[2], cap=cap))
    store_url = f"sqlite:///{workdir / 'store.db'}"
    partners = [PartnerNode(n, p) for n, p in zip([*GENEROUS, "frugal-bank"], policies,
                                                   strict=True)]
    with LocalDeployment(workdir / "logs", store_url, partners) as dep:
        flower_run_id, status = run_task(dep, TASK)
        yield dep, Store(store_url), paths, policies, flower_run_id, status
    assert dep.live_pids() == [] and flower_processes() == []


def test_run_completes_and_is_recorded(deployment) -> None:  # type: ignore[no-untyped-def]
    _, store, _, _, flower_run_id, status = deployment
    assert (status.status, status.sub_status) == ("finished", "completed"), status.details
    run = store.run_by_flower_id(flower_run_id)
    assert run is not None and run.status == COMPLETED and run.reason is None
    assert run.task_sha256 == TASK.sha256()
    run = store.get_run(run.id)
    assert [r.round for r in run.rounds] == [1, 2]
    for row in run.rounds:
        assert row.trained_nodes == 2 and row.evaluated_nodes == 3
        assert 0.5 < row.metrics["accuracy"] <= 1 and row.metrics["loss"] > 0
        assert 0 <= row.metrics["auc"] <= 1
    # the frugal partner refused with its reason, and the round went on without it
    [refusal] = run.rounds[0].partner_errors
    assert refusal.startswith("partner 'frugal-bank' refuses: this run's plan would bring the "
                              "dataset's lifetime epsilon to ")


def test_privacy_reports_grow_and_match_ledgers_and_opacus(deployment) -> None:  # type: ignore[no-untyped-def]
    _, store, _, policies, flower_run_id, _ = deployment
    run = store.get_run(store.run_by_flower_id(flower_run_id).id)
    assert sorted({r.partner for r in run.privacy_reports}) == sorted(GENEROUS)
    for partner, policy_path in zip(GENEROUS, policies, strict=False):
        reports = [r for r in run.privacy_reports if r.partner == partner]
        assert [r.round for r in reports] == [1, 2]
        history: list[Mechanism] = []
        for report in reports:
            assert report.noise_multiplier == TASK.dp.noise_multiplier
            assert report.delta == TASK.dp.delta and report.dataset == "caravan"
            history.append(Mechanism(noise_multiplier=report.noise_multiplier,
                                     sample_rate=report.sample_rate, steps=report.steps))
            # cumulative over the whole history, as Opacus' accountant gives it
            assert report.epsilon == pytest.approx(
                opacus_live_epsilon(history, TASK.dp.delta), rel=0.01)
            assert report.lifetime_epsilon == pytest.approx(report.epsilon)  # first run
        assert 0 < reports[0].epsilon < reports[1].epsilon
        # the partner's ledger holds the same history: reserved, then committed
        policy = PartnerPolicy.load(policy_path)
        with Ledger(policy.ledger_path("caravan"), create=False) as ledger:
            assert ledger.verify().ok
            assert [e.kind for e in ledger.entries()] == [RESERVE, COMMIT] * 2
            assert ledger.history() == history
            assert ledger.epsilon(TASK.dp.delta) == pytest.approx(reports[-1].lifetime_epsilon)
            # each report carried the ledger's head out: the coordinator's anchor
            commits = [e for e in ledger.entries() if e.kind == COMMIT]
            assert [(r.ledger_seq, r.ledger_hash) for r in reports] == [
                (e.seq, e.hash) for e in commits]
            assert ledger.verify(expect=(reports[-1].ledger_seq, reports[-1].ledger_hash)).ok


def test_model_loads_and_scores_the_holdouts(deployment) -> None:  # type: ignore[no-untyped-def]
    _, store, paths, _, flower_run_id, _ = deployment
    run = store.get_run(store.run_by_flower_id(flower_run_id).id)
    assert run.model is not None
    model = load_model(TASK, run.model)
    parts = [load_local_data(Path(p), TASK) for p in paths]
    model.eval()
    with torch.no_grad():
        scores = torch.softmax(model(torch.from_numpy(
            np.concatenate([p.x_holdout for p in parts]))), dim=1)[:, -1].numpy()
    auc = roc_auc(scores, np.concatenate([p.y_holdout for p in parts]))
    # partners average their AUCs; the pooled AUC of the same model is close to it
    assert auc == pytest.approx(run.rounds[-1].metrics["auc"], abs=0.1)


def test_two_concurrent_runs_exactly_one_trains_on_the_frugal_partner(deployment) -> None:  # type: ignore[no-untyped-def]
    dep, store, _, policies, _, _ = deployment
    task = task_with(rounds=1, local_epochs=1, min_nodes=2, round_timeout=90, seed=11)
    control = FlowerControl(dep.address)
    try:
        runs = [control.start_run(task.to_json()) for _ in range(2)]
        statuses = [wait_for_run(control, run, timeout=240) for run in runs]
    finally:
        control.close()
    assert [s.sub_status for s in statuses] == ["completed", "completed"]
    frugal = [r for run in runs for r in store.get_run(store.run_by_flower_id(run).id)
              .privacy_reports if r.partner == "frugal-bank"]
    assert len(frugal) == 1 and frugal[0].lifetime_epsilon <= frugal[0].epsilon_cap
    with Ledger(PartnerPolicy.load(policies[2]).ledger_path("caravan")) as ledger:
        assert [e.kind for e in ledger.entries()] == [RESERVE, COMMIT]
