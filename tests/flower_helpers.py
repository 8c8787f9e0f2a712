"""Running real Flower deployments on loopback from tests."""

from __future__ import annotations

from pathlib import Path

from sangsaeng.server.control import FlowerControl, FlowerRunStatus, wait_for_run
from sangsaeng.server.deployment import LocalDeployment, running_processes
from sangsaeng.shared.task import TaskSpec


def run_task(deployment: LocalDeployment, task: TaskSpec | str,
             timeout: float = 240) -> tuple[int, FlowerRunStatus]:
    """Submit a task (or raw JSON, to bypass client-side validation) and wait for the end."""
    control = FlowerControl(deployment.address)
    try:
        run_id = control.start_run(task if isinstance(task, str) else task.to_json())
        return run_id, wait_for_run(control, run_id, timeout=timeout)
    finally:
        control.close()


FLOWER_PROGRAMS = {"flower-superlink", "flower-supernode", "flower-superexec", "flwr-serverapp",
                   "flwr-clientapp"}


def flower_processes() -> list[str]:
    """Command lines of every running Flower process on this machine (tests run one
    deployment at a time, so after one stops there must be none)."""
    return [" ".join(argv) for _, argv in running_processes()
            if any(Path(arg).name in FLOWER_PROGRAMS for arg in argv[:2])]
