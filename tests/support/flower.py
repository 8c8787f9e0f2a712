"""Running real Flower deployments on loopback from tests."""

from __future__ import annotations

from sangsaeng.server.db import Store
from sangsaeng.server.deployment.flower_processes import LocalDeployment
from sangsaeng.server.flower.control import FlowerControl, FlowerRunStatus, wait_for_run
from sangsaeng.server.runs import lifecycle
from sangsaeng.shared.task import TaskSpec


def run_task(deployment: LocalDeployment, store: Store, task: TaskSpec | str,
             timeout: float = 240) -> tuple[int, FlowerRunStatus]:
    """Start a task as the coordinator does (recorded, then started), or raw JSON straight
    into Flower (bypassing every check before the ServerApp's), and wait for the end.
    Returns the Flower run id and Flower's final status."""
    control = FlowerControl(deployment.address)
    try:
        if isinstance(task, str):
            flower_run_id = control.start_run(task, store_run_id=0)
        else:
            run = lifecycle.start(store, control, task, owner=None)
            assert run.flower_run_id is not None
            flower_run_id = int(run.flower_run_id)
        return flower_run_id, wait_for_run(control, flower_run_id, timeout=timeout)
    finally:
        control.close()
