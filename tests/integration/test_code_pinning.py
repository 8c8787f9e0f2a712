"""issue 15, finding 1: a coordinator that swapped the FAB's ClientApp ran its own code on
the partner's machine and got raw rows back, without the ledger ever being opened. A
partner's node (`sangsaeng client node`) now refuses every FAB but the one its installed
release builds, and never imports FAB code at all."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_files

from sangsaeng.client.ledger import Ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.data import write_partitions
from sangsaeng.server.db import Store
from sangsaeng.server.deployment.flower_processes import LocalDeployment, PartnerNode
from sangsaeng.server.flower.control import FlowerControl, wait_for_run
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, FAILED
from sangsaeng.shared.fab import FILES, build_fab
from sangsaeng.shared.wire import RUN_CONFIG_STORE_RUN, RUN_CONFIG_TASK

from ..support.cli import sangsaeng
from ..support.processes import flower_processes
from ..support.tasks import caravan_policy, task_with

TASK = task_with(rounds=1, local_epochs=1, min_nodes=1, round_timeout=120)

# What a dishonest coordinator would ship: a ClientApp that reads the partner's data file
# and sends rows back. If it ever runs, it leaves a marker next to the data.
THIEF = '''
from pathlib import Path
import pandas as pd
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.clientapp import ClientApp
from sangsaeng.client.policy import PartnerPolicy

app = ClientApp()

@app.train()
def train(msg, context):
    policy = PartnerPolicy.load(context.node_config["policy"])
    rules = next(iter(policy.datasets.values()))
    (rules.data_path.parent / "STOLEN").write_text("the coordinator's code ran here")
    rows = pd.read_csv(rules.data_path).select_dtypes("number").head(5).to_numpy("float32")
    return Message(RecordDict({"arrays": ArrayRecord([rows])}), reply_to=msg)
'''


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalDeployment,
                                                                           Store, Path]]:
    workdir = tmp_path_factory.mktemp("pinning")
    [data] = write_partitions(["acme", "other"], workdir / "partners")[1:]  # a CSV file
    policy = caravan_policy(workdir / "partners", "acme", data)
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with LocalDeployment(workdir / "logs", store_url, [PartnerNode("acme", policy)]) as dep:
        yield dep, Store(store_url), policy
    assert dep.live_pids() == [] and flower_processes() == []


def _run(dep: LocalDeployment, store: Store, fab: tuple[bytes, str]) -> tuple[str, str]:
    """Start the task's run with `fab`; (status in the store, its reason)."""
    run_id = lifecycle.create(store, TASK, None)
    control = FlowerControl(dep.address)
    try:
        flower_run = control.start_app(fab, {RUN_CONFIG_TASK: TASK.to_json(),
                                             RUN_CONFIG_STORE_RUN: run_id})
        lifecycle.claim(store, run_id, flower_run)
        wait_for_run(control, flower_run, timeout=180)
    finally:
        control.close()
    run = store.runs.get(run_id)
    return run.status, run.reason or ""


def test_a_swapped_client_app_is_refused_and_never_runs(
        deployment: tuple[LocalDeployment, Store, Path]) -> None:
    dep, store, policy_path = deployment
    policy = PartnerPolicy.load(policy_path)
    swapped = build_fab_from_files({**FILES, "sangsaeng_fab/client_app.py": THIEF.encode()})[0]
    status, reason = _run(dep, store, (swapped, hashlib.sha256(swapped).hexdigest()))
    assert status == FAILED
    assert "FAB refused by partner: sha256 " in reason
    assert "is not the FAB of the partner's installed sangsaeng release" in reason
    assert not (policy.datasets["caravan"].data_path.parent / "STOLEN").exists()
    with Ledger(policy.ledger_path("caravan")) as ledger:
        assert ledger.entries() == []
    # the honest FAB still trains on the same node
    status, reason = _run(dep, store, build_fab())
    assert status == COMPLETED, reason
    with Ledger(policy.ledger_path("caravan")) as ledger:
        assert len(ledger.entries()) == 3  # reserve, commit, evaluate


def test_a_node_with_a_bad_policy_does_not_start(tmp_path: Path) -> None:
    result = sangsaeng("client", "node", "--policy", str(tmp_path / "missing.toml"),
                       "--superlink", "127.0.0.1:9", "--insecure")
    assert result.returncode == 2
    assert "the policy file named in node_config 'policy' does not exist" in result.stdout
