"""Faults, with real processes: the SuperLink dying mid-run, a partner's node crashing
mid-round. No run stays open forever, every event stream ends, nothing recorded is lost,
and partners reconnect: the next run completes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sangsaeng.api_client import SangsaengApi
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.data import write_partitions
from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.db.partners import PartnerKeyTaken
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.deployment.flower_processes import PartnerNode
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.server.runs.states import COMPLETED, OPEN
from sangsaeng.shared.node_keys import create_node_key

from ..support.coordinator import join
from ..support.processes import flower_processes
from ..support.records import register_caravan
from ..support.tasks import caravan_policy, task_with

PARTNERS = ["north-bank", "south-insurance"]
# Rounds long enough to be caught in the middle; a round waits at most 60 s for replies.
SLOW = task_with(rounds=4, local_epochs=3, min_nodes=2, round_timeout=60)
QUICK = task_with(rounds=1, local_epochs=1, min_nodes=2, round_timeout=120)
END_SECONDS = 300  # a run hit by a fault ends within this (round timeouts, reconciliation)


@dataclass
class Deployment:
    coordinator: Coordinator
    partners: list[PartnerNode]
    api: SangsaengApi


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("faults")
    data = write_partitions(PARTNERS, workdir / "data")
    with Coordinator(workdir / "coordinator", f"sqlite:///{workdir / 'store.db'}",
                     persistent_superlink=True) as c:
        register_caravan(c.store)
        partners = [join(c, name, caravan_policy(workdir / "partners", name, path))
                    for name, path in zip(PARTNERS, data, strict=True)]
        token = create_token(c.store, "acme-ml", Role.STARTUP, "acme")
        with SangsaengApi(c.api_url, token, ca_file=c.ca_file) as api:
            yield Deployment(c, partners, api)
    assert flower_processes() == []


def started_and_in_round(d: Deployment, rounds_done: int = 1) -> int:
    run = d.api.start_run(SLOW)
    deadline = time.monotonic() + 180
    while len(d.api.run(run.id).rounds) < rounds_done:
        assert time.monotonic() < deadline, "the run never reached its first rounds"
        time.sleep(0.5)
    return run.id


def ended(d: Deployment, run_id: int) -> tuple[str, str | None, list[str]]:
    """(status, reason, event kinds) once the run's event stream has ended by itself."""
    began = time.monotonic()
    kinds = [event.kind for event in d.api.events(run_id)]  # returns only at the end
    assert time.monotonic() - began < END_SECONDS
    run = d.api.run(run_id)
    assert run.status not in OPEN and kinds[-1] == "end"
    return run.status, run.reason, kinds


def records(d: Deployment, run_id: int) -> list[tuple[int, str]]:
    return [(r.round, r.partner) for r in d.coordinator.store.runs.get(run_id).privacy_reports]


def test_the_superlink_dying_mid_run(d: Deployment) -> None:
    run_id = started_and_in_round(d)
    before = records(d, run_id)
    old = d.coordinator.flower.superlink
    os.kill(old.pid, signal.SIGKILL)
    status, reason, _ = ended(d, run_id)
    assert d.coordinator.flower.superlink is not old  # the coordinator started it again
    assert set(before) <= set(records(d, run_id))  # nothing recorded was lost
    print(f"run {run_id} after the SuperLink died: {status} ({reason})")
    # partners reconnect by themselves; the next run completes
    assert ended(d, d.api.start_run(QUICK).id)[0] == COMPLETED


def test_a_partner_node_crashing_mid_round(d: Deployment) -> None:
    run_id = started_and_in_round(d)
    [node] = [p for p in d.coordinator.flower.processes
              if p.poll() is None and "north-bank" in str(p.args)]
    os.killpg(node.pid, signal.SIGKILL)  # the node and its ClientApp
    status, reason, _ = ended(d, run_id)
    assert status != COMPLETED and reason is not None and "round" in reason
    assert len(records(d, run_id)) >= 2  # the rounds before the crash stay recorded
    # Flower refuses to activate a node it still counts online ("[code: 2004] Failed to
    # activate SuperNode"): the partner starts its node again once the old one has lapsed
    [north] = [p for p in d.coordinator.store.partners.list() if p.name == "north-bank"]
    control = FlowerControl(d.coordinator.flower.address, d.coordinator.flower.ca_file)
    try:
        deadline = time.monotonic() + 180
        while any(n.node_id == int(north.node_id or 0) and n.status == "online"
                  for n in control.nodes()):
            assert time.monotonic() < deadline, "the crashed node never went offline"
            time.sleep(1)
    finally:
        control.close()
    d.coordinator.add_partner(d.partners[0])
    assert ended(d, d.api.start_run(QUICK).id)[0] == COMPLETED


def test_a_partner_removed_mid_round_and_added_again(d: Deployment) -> None:
    store = d.coordinator.store
    [south] = [p for p in store.partners.list() if p.name == "south-insurance"]
    run_id = started_and_in_round(d)
    assert store.partners.remove("south-insurance")
    status, reason, _ = ended(d, run_id)
    assert status != COMPLETED and reason is not None
    assert all(partner in PARTNERS for _, partner in records(d, run_id))
    # its node key stays revoked; with a new one, the operator adds it again
    with pytest.raises(PartnerKeyTaken, match="revoked"):
        store.partners.put(south.name, south.public_key, south.node_key, replace=True)
    key_path = PartnerPolicy.load(d.partners[1].policy_path).node_key_path()
    key_path.rename(key_path.with_name("node-key.revoked"))
    store.partners.put(south.name, south.public_key, create_node_key(key_path), replace=True)
    d.coordinator.add_partner(d.partners[1])
    assert ended(d, d.api.start_run(QUICK).id)[0] == COMPLETED


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    return deployment
