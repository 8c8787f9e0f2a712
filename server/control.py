"""Start, watch and stop runs through the SuperLink's Control API (HTTP, private address).

The Control API has no authentication in open-source Flower: only the coordinator may
reach it, never partners or startups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flwr.common.serde import fab_to_proto, user_config_to_proto
from flwr.proto.control_pb2 import ListRunsRequest, StartRunRequest, StopRunRequest
from flwr.supercore.control.control_http_client import ControlHttpClient
from flwr.supercore.fab import Fab

from sangsaeng.shared.task import RUN_CONFIG_KEY

from .fab import build_fab
from .store import FAILED, RUNNING, STOPPED, Run, Store


@dataclass(frozen=True)
class FlowerRunStatus:
    status: str  # "pending", "starting", "running", "finished"
    sub_status: str  # "completed", "failed", "stopped" or "" while not finished
    details: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"


class FlowerControl:
    def __init__(self, address: str) -> None:
        self._client = ControlHttpClient.from_server_address(
            server_address=address, insecure=True, root_certificates=None, interceptors=[]
        )

    def start_run(self, task_json: str) -> int:
        """Start a run of Sangsaeng's app on `task_json` (from a validated TaskSpec.to_json();
        the ServerApp and every ClientApp validate it again themselves)."""
        fab_bytes, fab_hash = build_fab()
        response = self._client.StartRun(StartRunRequest(
            fab=fab_to_proto(Fab(fab_hash, fab_bytes, {})),
            override_config=user_config_to_proto({RUN_CONFIG_KEY: task_json}),
        ))
        if not response.HasField("run_id"):
            raise RuntimeError("the SuperLink did not start the run")
        return int(response.run_id)

    def status(self, run_id: int) -> FlowerRunStatus:
        run = self._client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict[run_id]
        return FlowerRunStatus(run.status.status, run.status.sub_status, run.status.details)

    def stop_run(self, run_id: int) -> None:
        self._client.StopRun(StopRunRequest(run_id=run_id))

    def close(self) -> None:
        self._client.close()


def wait_for_run(control: FlowerControl, run_id: int, timeout: float,
                 on_poll: Callable[[FlowerRunStatus], None] | None = None,
                 poll_seconds: float = 0.5) -> FlowerRunStatus:
    """Poll until Flower reports the run finished; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        status = control.status(run_id)
        if on_poll is not None:
            on_poll(status)
        if status.finished:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still '{status.status}' after {timeout:g} s")
        time.sleep(poll_seconds)


def record_flower_end(store: Store, flower_run_id: int, status: FlowerRunStatus) -> Run | None:
    """The run as stored, closed if Flower finished it but the ServerApp could not record
    the end (stopped and shut down first, killed, out of memory): the store never claims a
    run is still running once Flower says it is not."""
    run = store.run_by_flower_id(flower_run_id)
    if run is None:
        return None
    if run.status == RUNNING and status.finished:
        if status.sub_status == "stopped":
            store.end_run(run.id, STOPPED, "stopped before it completed")
        else:
            store.end_run(run.id, FAILED, f"Flower reports the run {status.sub_status or 'ended'}"
                          f" but the ServerApp recorded no end: {status.details or 'no details'}")
    return store.get_run(run.id)
