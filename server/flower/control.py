"""Start, watch and stop runs through the SuperLink's Control API (HTTP, private address).

The Control API has no authentication in open-source Flower: only the coordinator may
reach it, never partners or startups.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from flwr.app.user_config import UserConfig
from flwr.common.serde import fab_to_proto, user_config_to_proto
from flwr.proto.control_pb2 import (
    ConfigureSimulationFederationRequest,
    ListNodesRequest,
    ListRunsRequest,
    RegisterNodeRequest,
    StartRunRequest,
    StopRunRequest,
    UnregisterNodeRequest,
)
from flwr.proto.federation_config_pb2 import SimulationConfig
from flwr.supercore.control.control_http_client import ControlHttpClient
from flwr.supercore.error.base import ApiErrorCode
from flwr.supercore.fab import Fab

from sangsaeng.shared.fab import build_fab
from sangsaeng.shared.wire import RUN_CONFIG_STORE_RUN, RUN_CONFIG_TASK


@dataclass(frozen=True)
class FlowerRunStatus:
    status: str  # "pending", "starting", "running", "finished"
    sub_status: str  # "completed", "failed", "stopped" or "" while not finished
    details: str
    finished_at: dt.datetime | None = None
    running_at: dt.datetime | None = None  # when its ServerApp started

    @property
    def finished(self) -> bool:
        return self.status == "finished"


@dataclass(frozen=True)
class FlowerNode:
    node_id: int
    public_key: bytes  # PEM; empty for a node that registered itself (no authentication)
    status: str  # registered | online | offline | unregistered


class FlowerControl:
    def __init__(self, address: str, root_certificates: Path | None = None) -> None:
        """A client of the Control API at `address`: over TLS verified against
        `root_certificates` (a CA file), or plain HTTP on loopback if None."""
        self._client = ControlHttpClient.from_server_address(
            server_address=address, insecure=root_certificates is None,
            root_certificates=root_certificates.read_bytes() if root_certificates else None,
            interceptors=[])

    def start_run(self, task_json: str, store_run_id: int) -> int:
        """Start a run of Sangsaeng's app on `task_json` (from a validated TaskSpec.to_json();
        the ServerApp and every ClientApp validate it again themselves), recorded in the
        store as `store_run_id`. Use runs.lifecycle.start, which creates that record first."""
        return self.start_app(build_fab(), {RUN_CONFIG_TASK: task_json,
                                            RUN_CONFIG_STORE_RUN: store_run_id})

    def start_app(self, fab: tuple[bytes, str], config: UserConfig) -> int:
        """Start a run of the Flower app in `fab` (bytes, sha256) with `config` as its
        run config; the Flower run id."""
        fab_bytes, fab_hash = fab
        response = self._client.StartRun(StartRunRequest(
            fab=fab_to_proto(Fab(fab_hash, fab_bytes, {})),
            override_config=user_config_to_proto(config),
        ))
        if not response.HasField("run_id"):
            raise RuntimeError("the SuperLink did not start the run")
        return int(response.run_id)

    def status(self, run_id: int) -> FlowerRunStatus | None:
        """The run's status, or None if the SuperLink does not know the run."""
        try:
            runs = self._client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict
        except httpx.HTTPStatusError as err:
            if _api_error_code(err.response) == ApiErrorCode.RUN_ID_NOT_FOUND:
                return None
            raise
        if run_id not in runs:
            return None
        run = runs[run_id]
        return FlowerRunStatus(run.status.status, run.status.sub_status, run.status.details,
                               _timestamp(run.finished_at), _timestamp(run.running_at))

    def configure_simulation(self, virtual_nodes: int, cpus_per_node: int, cpus: int) -> None:
        """Size the simulation engine of a SuperLink started with --simulation (see
        LocalDeployment.simulation): the virtual SuperNodes of every later run, and the
        Ray CPUs each ClientApp takes out of `cpus`."""
        self._client.ConfigureSimulationFederation(ConfigureSimulationFederationRequest(
            config=SimulationConfig(num_supernodes=virtual_nodes, init_args_num_cpus=cpus,
                                    client_resources_num_cpus=cpus_per_node)))

    def nodes(self) -> list[FlowerNode]:
        return [FlowerNode(n.node_id, n.public_key, n.status)
                for n in self._client.ListNodes(ListNodesRequest()).nodes_info]

    def register_node(self, public_key_pem: bytes, name: str) -> int:
        """Let the node with this key in (SuperLinks with --enable-supernode-auth); its id."""
        return int(self._client.RegisterNode(RegisterNodeRequest(
            public_key=public_key_pem, name=name)).node_id)

    def unregister_node(self, node_id: int) -> None:
        """Cut the node off: its next request, and its heartbeat, are refused."""
        self._client.UnregisterNode(UnregisterNodeRequest(node_id=node_id))

    def stop_run(self, run_id: int) -> None:
        self._client.StopRun(StopRunRequest(run_id=run_id))

    def close(self) -> None:
        self._client.close()


def _timestamp(text: str) -> dt.datetime | None:
    """Flower's ISO timestamps (UTC); None if unset or not one."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _api_error_code(response: httpx.Response) -> int | None:
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def wait_for_run(control: FlowerControl, run_id: int, timeout: float,
                 on_poll: Callable[[FlowerRunStatus], None] | None = None,
                 poll_seconds: float = 0.5) -> FlowerRunStatus:
    """Poll until Flower reports the run finished; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        status = control.status(run_id)
        if status is None:
            raise LookupError(f"the SuperLink does not know run {run_id}")
        if on_poll is not None:
            on_poll(status)
        if status.finished:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still '{status.status}' after {timeout:g} s")
        time.sleep(poll_seconds)
