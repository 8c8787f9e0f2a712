"""The whole product on loopback, driven as its users drive it: the operator registers the
dataset and a startup's token with `sangsaeng admin`; the startup starts, watches and
downloads with `sangsaeng run`, through the API only; partners' SuperNodes dial the Fleet
proxy. Then the store, the partners' ledgers and the downloaded model are checked.

Three partners: two with ample caps, and 'frugal-bank', whose cap allows exactly one
round of this task — so it refuses the two-round run, and of two one-round runs started
at the same time, exactly one trains on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sangsaeng.api_client import SangsaengApi
from sangsaeng.client import dp_sgd
from sangsaeng.client.data import partner_data
from sangsaeng.client.evaluation import holdout_sums, loss_bound
from sangsaeng.client.ledger import COMMIT, EVALUATE, RESERVE, Ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.data import public_rows, write_partitions
from sangsaeng.server.db import Store
from sangsaeng.server.db.tables import Run
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.runs.states import COMPLETED, STOPPED
from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian
from sangsaeng.shared.models import load_model
from sangsaeng.shared.rest.catalogue import DatasetEntry

from ..support.coordinator import join
from ..support.processes import flower_processes
from ..support.records import until_ended
from ..support.tasks import caravan_policy, opacus_live_epsilon, task_with

SANGSAENG = str(Path(sys.executable).parent / "sangsaeng")
GENEROUS = ["north-bank", "south-insurance"]
TASK = task_with(rounds=2, local_epochs=1, min_nodes=2, round_timeout=90)


@dataclass
class Deployment:
    coordinator: Coordinator
    store: Store
    token: str
    paths: list[Path]
    policies: list[Path]
    run: Run
    watch_lines: list[tuple[float, str]]  # (time.time(), line) as `run watch` printed them
    watch_code: int
    model_path: Path
    card_path: Path


def cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([SANGSAENG, *args], capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("e2e")
    paths = write_partitions([*GENEROUS, "frugal-bank"], workdir / "partners")
    one_round = [dp_sgd.plan(TASK, round(public_rows(paths[2]) * 0.8)),
                 gaussian(TASK.dp.evaluation_noise_multiplier)]
    cap = (epsilon(one_round, TASK.dp.delta) + epsilon(one_round * 2, TASK.dp.delta)) / 2
    policies = [caravan_policy(workdir / "partners", n, p) for n, p in zip(GENEROUS, paths,
                                                                            strict=False)]
    policies.append(caravan_policy(workdir / "partners", "frugal-bank", paths[2], cap=cap))
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with Coordinator(workdir, store_url) as coordinator:
        env = {**os.environ, "SANGSAENG_STORE_URL": store_url, "COLUMNS": "200",
               "SANGSAENG_API_URL": coordinator.api_url,
               "SANGSAENG_CA_FILE": str(coordinator.ca_file)}
        # the operator: publish the dataset's schema, give the startup a token
        catalogue = workdir / "caravan.catalogue.json"
        catalogue.write_text(DatasetEntry(name="caravan", features=TASK.features,
                                          target=TASK.target, partners=3, rows=5822)
                             .model_dump_json())
        cli("admin", "dataset", "add", str(catalogue), env=env)
        token = cli("admin", "token", "create", "--role", "startup", "--name", "acme-ml",
                    "--tenant", "acme", env=env).strip()
        env["SANGSAENG_TOKEN"] = token
        for name, policy in zip([*GENEROUS, "frugal-bank"], policies, strict=True):
            join(coordinator, name, policy)
        # the startup: start, watch, download
        task_path = workdir / "task.json"
        task_path.write_text(TASK.to_json())
        started = cli("run", "start", str(task_path), env=env)
        run_id = int(re.search(r"started run (\d+)", started).group(1))  # type: ignore[union-attr]
        watch = subprocess.Popen([SANGSAENG, "run", "watch", str(run_id)], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert watch.stdout is not None
        lines = [(time.time(), line.rstrip()) for line in watch.stdout]  # until it exits
        watch_code = watch.wait(timeout=30)
        model_path, card_path = workdir / "model.safetensors", workdir / "card.json"
        cli("run", "model", str(run_id), "-o", str(model_path), "--card", str(card_path),
            env=env)
        store = Store(store_url)
        yield Deployment(coordinator, store, token, paths, policies, store.runs.get(run_id),
                         lines, watch_code, model_path, card_path)
    assert coordinator.flower.live_pids() == [] and flower_processes() == []


def test_run_completes_and_is_recorded(deployment: Deployment) -> None:
    run = deployment.run
    assert run.status == COMPLETED and run.reason is None and run.owner == "acme"
    assert run.task_sha256 == TASK.sha256() and run.flower_run_id is not None
    assert deployment.watch_code == 0
    assert [r.round for r in run.rounds] == [1, 2]
    for row in run.rounds:  # only partners that trained the round evaluate it
        assert row.trained_nodes == 2 and row.evaluated_nodes == 2
        assert 0.5 < row.metrics["accuracy"] <= 1 and row.metrics["loss"] > 0
        assert set(row.metrics) == {"loss", "accuracy"}  # AUC is not released
    # the frugal partner refused with its reason, and the round went on without it
    [refusal] = run.rounds[0].partner_errors
    assert refusal.startswith("partner 'frugal-bank' refuses: this run's plan would bring the "
                              "dataset's lifetime epsilon to ")


def test_watch_shows_each_round_as_it_happens(deployment: Deployment) -> None:
    run, lines = deployment.run, deployment.watch_lines
    at = {r: next(t for t, line in lines if line.startswith(f"round {r}/2  loss"))
          for r in (1, 2)}
    # round 1 appeared while round 2 was still training (its row is written after training)
    assert at[1] < _epoch(run.rounds[1].recorded_at)
    assert _epoch(run.rounds[1].recorded_at) <= at[2] <= _epoch(run.finished_at) + 5
    text = "\n".join(line for _, line in lines)
    assert "round 1: partner 'frugal-bank' refuses" in text
    for row in run.rounds:  # the metrics shown are the store's
        assert f"accuracy {row.metrics['accuracy']:.3f}" in text
    assert re.search(r"Run \d+ \(Flower run \d+\): completed", text)


def test_privacy_reports_grow_and_match_ledgers_and_opacus(deployment: Deployment) -> None:
    run = deployment.run
    assert sorted({r.partner for r in run.privacy_reports}) == sorted(GENEROUS)
    for partner, policy_path in zip(GENEROUS, deployment.policies, strict=False):
        reports = [r for r in run.privacy_reports if r.partner == partner]
        assert [r.round for r in reports] == [1, 2]
        history: list[Mechanism] = []
        for report in reports:
            assert report.noise_multiplier == TASK.dp.noise_multiplier
            assert report.delta == TASK.dp.delta and report.dataset == "caravan"
            assert report.evaluation_noise_multiplier == TASK.dp.evaluation_noise_multiplier
            history += [Mechanism(noise_multiplier=report.noise_multiplier,
                                  sample_rate=report.sample_rate, steps=report.steps),
                        gaussian(report.evaluation_noise_multiplier)]
            # cumulative over the whole history, as Opacus' accountant gives it
            assert report.epsilon == pytest.approx(
                opacus_live_epsilon(history, TASK.dp.delta), rel=0.01)
            assert report.lifetime_epsilon == pytest.approx(report.epsilon)  # first run
        assert 0 < reports[0].epsilon < reports[1].epsilon
        # the partner's ledger holds the same history: reserved, then committed
        policy = PartnerPolicy.load(policy_path)
        with Ledger(policy.ledger_path("caravan")) as ledger:
            assert ledger.verify().ok
            assert [e.kind for e in ledger.entries()] == [RESERVE, COMMIT, EVALUATE] * 2
            assert ledger.history() == history
            spent = ledger.spending(TASK.dp.delta).lifetime
            assert spent == pytest.approx(reports[-1].lifetime_epsilon)
            # each report carried the ledger's head out: the coordinator's anchor
            commits = [e for e in ledger.entries() if e.kind == COMMIT]
            assert [(r.ledger_seq, r.ledger_hash) for r in reports] == [
                (e.seq, e.hash) for e in commits]
            assert ledger.verify(expect=(reports[-1].ledger_seq, reports[-1].ledger_hash)).ok


def test_downloaded_model_is_the_one_the_noisy_metrics_describe(deployment: Deployment) -> None:
    """The stored metrics are each partner's Gaussian release (σ = 10·√3 on ~390 holdout
    rows), FedAvg-weighted: close to the downloaded model's exact holdout metrics, not
    equal to them."""
    run = deployment.run
    weights = deployment.model_path.read_bytes()
    assert weights == run.model and hashlib.sha256(weights).hexdigest() == run.model_sha256
    model = load_model(TASK, weights)
    exact = []
    for policy in deployment.policies[:2]:  # the partners that trained and evaluated
        data = partner_data(policy, TASK)
        sums = holdout_sums(model, data.x_holdout, data.y_holdout, 2).tolist()
        exact.append((sums[0] * loss_bound(2) / sums[2], sums[1] / sums[2]))
    stored = run.rounds[-1].metrics
    # 0.15 is over 4 standard deviations of either noisy mean here
    assert stored["loss"] == pytest.approx(np.mean([e[0] for e in exact]), abs=0.15)
    assert stored["accuracy"] == pytest.approx(np.mean([e[1] for e in exact]), abs=0.15)
    card = json.loads(deployment.card_path.read_text())
    assert card["model_sha256"] == run.model_sha256 and card["task_sha256"] == run.task_sha256
    assert [r["metrics"] for r in card["metrics"]] == [r.metrics for r in run.rounds]
    last = {r.partner: r for r in run.privacy_reports if r.round == 2}
    assert {p["partner"]: p["epsilon"] for p in card["privacy"]} == {
        p: r.epsilon for p, r in last.items()}


def test_two_concurrent_runs_exactly_one_trains_on_the_frugal_partner(
        deployment: Deployment) -> None:
    task = task_with(rounds=1, local_epochs=1, min_nodes=2, round_timeout=90, seed=11)
    with SangsaengApi(deployment.coordinator.api_url, deployment.token,
                      ca_file=deployment.coordinator.ca_file) as api:
        run_ids = [api.start_run(task).id for _ in range(2)]
        ended = [until_ended(api, run_id, timeout=300) for run_id in run_ids]
    assert [r.status for r in ended] == [COMPLETED, COMPLETED]
    frugal = [p for run in ended for r in run.rounds for p in r.privacy
              if p.partner == "frugal-bank"]
    assert len(frugal) == 1 and frugal[0].lifetime_epsilon <= frugal[0].epsilon_cap
    policy = PartnerPolicy.load(deployment.policies[2])
    with Ledger(policy.ledger_path("caravan")) as ledger:
        assert [e.kind for e in ledger.entries()] == [RESERVE, COMMIT, EVALUATE]


def test_a_stopped_run_is_stopped_in_flower_and_in_the_store(deployment: Deployment) -> None:
    """A run waiting for more partners than exist is stopped with the CLI."""
    task = task_with(rounds=1, min_nodes=4, round_timeout=120)
    env = {**os.environ, "SANGSAENG_API_URL": deployment.coordinator.api_url,
           "SANGSAENG_TOKEN": deployment.token,
           "SANGSAENG_CA_FILE": str(deployment.coordinator.ca_file)}
    with SangsaengApi(deployment.coordinator.api_url, deployment.token,
                      ca_file=deployment.coordinator.ca_file) as api:
        run = api.start_run(task)
        cli("run", "stop", str(run.id), env=env)
        run = until_ended(api, run.id, timeout=60)
    assert run.status == STOPPED and run.reason == "stopped before it completed"
    assert run.rounds == []


def _epoch(t: dt.datetime | None) -> float:
    assert t is not None and t.tzinfo is not None
    return t.timestamp()
