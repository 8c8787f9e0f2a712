"""kill -9 of a client between its reserve and its reply: the reserve stays spent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sangsaeng.client.ledger import RESERVE, Ledger
from sangsaeng.client.policy import PartnerPolicy, TaskRefused
from sangsaeng.demo.data import write_partitions
from sangsaeng.shared.accounting import epsilon

from ..support.tasks import caravan_policy, task_with

# The ClientApp's train handler, in a process of its own, on a long local round.
CLIENT = """
import sys
from flwr.supercore.task_identity import TaskIdentity
TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from sangsaeng.client import client_app
from sangsaeng.shared.models import build_model
from sangsaeng.shared.task import TaskSpec
task = TaskSpec.from_json(sys.argv[1])
msg = Message(RecordDict({"arrays": ArrayRecord(build_model(task, seed=task.seed).state_dict()),
                          "config": ConfigRecord({"server-round": 1})}),
              dst_node_id=1, message_type=MessageType.TRAIN)
ctx = Context(run_id=7, node_id=1, node_config={"policy": sys.argv[2]}, state=RecordDict(),
              run_config={"task": task.to_json()})
client_app.train(msg, ctx)
"""


def test_kill_9_after_reserving_keeps_the_budget_spent(tmp_path: Path) -> None:
    data = write_partitions(["a"], tmp_path)[0]
    # rounds long enough to be killed in
    policy_path = caravan_policy(tmp_path, "acme", data, max_local_epochs=100)
    ledger_path = PartnerPolicy.load(policy_path).ledger_path("caravan")
    task = task_with(rounds=1, local_epochs=100)  # minutes of training: killed long before
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, task.to_json(), str(policy_path)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with Ledger(ledger_path) as ledger:
                if ledger.entries():
                    break
            time.sleep(0.1)
        assert proc.poll() is None, "the client ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # After the crash: the reserve is there, never committed, and counted as spent.
    with Ledger(ledger_path) as ledger:
        [entry] = ledger.entries()
        assert entry.kind == RESERVE and entry.run_id == "7"
        assert ledger.verify().ok
        spent = ledger.spending(1e-5).lifetime
    assert spent > 0
    # "After restart": the next run's check counts the orphan reserve. A cap that a fresh
    # ledger would allow refuses it.
    with Ledger(ledger_path) as ledger:
        planned = entry.mechanism()
        fits_alone = epsilon([planned], 1e-5) * 1.01
        with pytest.raises(TaskRefused, match=r"\(spent \d"):
            ledger.reserve(run_id="8", round_=1, planned=planned, evaluation=1e6, run_rounds=1,
                           delta=1e-5,
                           cap=fits_alone, task_sha256=entry.task_sha256, partner="acme",
                           plan_seconds=60)
    sangsaeng = str(Path(sys.executable).parent / "sangsaeng")
    shown = subprocess.run([sangsaeng, "client", "budget", "--policy", str(policy_path)],
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert f"spent ε {spent:.3f} of cap 100" in shown.stdout
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in shown.stdout.splitlines() if line.startswith("│")]
    assert rows == [["7", "1", "0", f"{spent:.3f}"]]  # run, reserved, committed, its ε
    subprocess.run([sangsaeng, "client", "key", "create", "--policy", str(policy_path)],
                   check=True, capture_output=True)
    exported = subprocess.run([sangsaeng, "client", "ledger", "export", "--policy",
                               str(policy_path), "--dataset", "caravan"],
                              capture_output=True, text=True)
    [row] = json.loads(exported.stdout)["export"]["entries"]
    assert row["kind"] == RESERVE  # the orphan reserve goes to auditors too
