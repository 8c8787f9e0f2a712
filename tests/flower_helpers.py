"""Running real Flower deployments on loopback from tests."""

from __future__ import annotations

from pathlib import Path

from sangsaeng.server import runs
from sangsaeng.server.control import FlowerControl, FlowerRunStatus, wait_for_run
from sangsaeng.server.deployment import LocalDeployment, running_processes
from sangsaeng.server.store import Store
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
            run = runs.start_run(store, control, task, owner=None)
            assert run.flower_run_id is not None
            flower_run_id = int(run.flower_run_id)
        return flower_run_id, wait_for_run(control, flower_run_id, timeout=timeout)
    finally:
        control.close()


FLOWER_PROGRAMS = {"flower-superlink", "flower-supernode", "flower-superexec", "flwr-serverapp",
                   "flwr-clientapp"}


def flower_processes() -> list[str]:
    """Command lines of every running Flower process on this machine (tests run one
    deployment at a time, so after one stops there must be none)."""
    return [" ".join(argv) for _, argv in running_processes()
            if any(Path(arg).name in FLOWER_PROGRAMS for arg in argv[:2])]
