"""Running real Flower deployments on loopback from tests."""

from __future__ import annotations

from pathlib import Path

from sangsaeng.server.control import FlowerControl, FlowerRunStatus, wait_for_run
from sangsaeng.server.deployment import LocalDeployment
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


def processes_using(deployment: LocalDeployment) -> list[str]:
    """Command lines of live (non-zombie) processes that name this deployment's ports."""
    needles = [f":{deployment.port}", *(f":{p}" for p in deployment.node_ports)]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(n in cmdline for n in needles):
            found.append(cmdline)
    return found
