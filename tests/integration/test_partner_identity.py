"""Partners are who their node key says, over TLS on every path (real processes, loopback).

A registered partner trains; an unregistered key, a keyless node, a wrong CA and a removed
partner are each refused with a message that says why; the partners' door never reaches
the Control API; reports are recorded under the partner the key belongs to.
"""

from __future__ import annotations

import base64
import datetime as dt
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.proto.control_pb2 import ListRunsRequest
from flwr.supercore.primitives.asymmetric import public_key_to_bytes, sign_message

from sangsaeng.api_client import SangsaengApi
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.data import write_partitions
from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.deployment.certificates import ensure_ca
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.deployment.fleet_proxy import create_fleet_proxy
from sangsaeng.server.deployment.flower_processes import PartnerNode, free_port
from sangsaeng.server.deployment.listeners import Listener, Services
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.server.runs.states import COMPLETED
from sangsaeng.shared.node_keys import create_node_key

from ..support.cli import sangsaeng
from ..support.coordinator import join, partner_keys, verify
from ..support.processes import flower_processes
from ..support.records import register_caravan, until_ended
from ..support.tasks import caravan_policy, task_with

TASK = task_with(rounds=1, local_epochs=1, min_nodes=1, round_timeout=120)
EXIT_SECONDS = 90  # an refused node gives up by itself well within this (bounded waits)


@dataclass
class Deployment:
    coordinator: Coordinator
    workdir: Path
    data: list[Path]
    token: str

    def policy(self, name: str, index: int) -> Path:
        """The partner's policy (and ledger), made on first use, over data slice `index`."""
        path = self.workdir / "partners" / f"{name}.policy.toml"
        if path.exists():
            return path
        return caravan_policy(self.workdir / "partners", name, self.data[index])

    def node_log(self, name: str) -> str:
        return self.coordinator.flower.log_path(f"supernode-{name}").read_text(errors="replace")

    def start_node(self, name: str, policy: Path, ca: Path | None = None,
                   keyless: bool = False) -> subprocess.Popen[bytes]:
        """A partner's node dialling the Fleet proxy, with the coordinator's CA (or `ca`);
        `keyless`: Flower's own SuperNode started without any node key."""
        flower = self.coordinator.flower
        flower.pinned = not keyless
        try:
            flower.add_supernode(PartnerNode(name, policy), self.coordinator.fleet_address,
                                 ca or self.coordinator.ca_file)
        finally:
            flower.pinned = True
        return flower.processes[-1]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("identity")
    data = write_partitions(["north-bank", "south-insurance", "east-card"], workdir / "data")
    with Coordinator(workdir / "coordinator", f"sqlite:///{workdir / 'store.db'}") as c:
        register_caravan(c.store)
        yield Deployment(c, workdir, data, create_token(c.store, "acme-ml", Role.STARTUP,
                                                        "acme"))
    assert flower_processes() == []


def exited(process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + EXIT_SECONDS
    while process.poll() is None:
        assert time.monotonic() < deadline, "the refused node is still running"
        time.sleep(0.5)
    return process.returncode


def run_to_end(d: Deployment) -> list[str]:
    """A one-round run; the partners its privacy records name."""
    with SangsaengApi(d.coordinator.api_url, d.token, ca_file=d.coordinator.ca_file) as api:
        run = until_ended(api, api.start_run(TASK).id, timeout=300)
        assert run.status == COMPLETED, run.reason
    return sorted({r.partner for r in d.coordinator.store.runs.get(run.id).privacy_reports})


def test_a_registered_partner_trains_under_its_registered_name(d: Deployment) -> None:
    # the policy calls itself "north-bank"; the operator registered its key as that name
    join(d.coordinator, "north-bank", d.policy("north-bank", 0))
    assert run_to_end(d) == ["north-bank"]
    [row] = [p for p in d.coordinator.store.partners.list() if p.name == "north-bank"]
    assert row.node_id is not None  # the SuperLink's id for its key


def test_an_unregistered_key_is_refused(d: Deployment) -> None:
    policy = d.policy("stranger-bank", 1)
    partner_keys(policy)  # keys made, never registered
    assert exited(d.start_node("stranger-bank", policy)) != 0
    assert ("[code: 2004] this node key is not registered at the coordinator"
            in d.node_log("stranger-bank"))


def test_a_keyless_node_is_refused(d: Deployment) -> None:
    """Flower's own SuperNode, given no key, signs with a throwaway one: refused as
    unregistered. `sangsaeng client node` refuses to start without its node key."""
    policy = d.policy("keyless", 1)
    assert exited(d.start_node("keyless", policy, keyless=True)) != 0
    assert ("[code: 2004] this node key is not registered at the coordinator"
            in d.node_log("keyless"))
    result = sangsaeng("client", "node", "--policy", str(policy), "--superlink",
                       d.coordinator.fleet_address, "--root-certificates",
                       str(d.coordinator.ca_file))
    assert result.returncode == 2
    assert "no node key at" in result.stdout and "sangsaeng client node-key create" in result.stdout


def test_a_wrong_ca_is_refused(d: Deployment) -> None:
    policy = d.policy("south-insurance", 1)
    signing, node = partner_keys(policy)
    d.coordinator.store.partners.put("south-insurance", signing, node, replace=True)
    other_ca = ensure_ca(d.workdir / "another-ca")
    assert exited(d.start_node("south-insurance", policy, ca=other_ca)) != 0
    assert "CERTIFICATE_VERIFY_FAILED" in d.node_log("south-insurance")


def test_a_removed_partner_is_cut_off(d: Deployment) -> None:
    """Its node is unregistered from the SuperLink and exits; later runs go on without it."""
    policy = join_only(d, "east-card", d.policy("east-card", 2))
    wait_until(lambda: "east-card" in {p.name for p in d.coordinator.store.partners.list()
                                       if p.node_id is not None})  # admitted
    [row] = [p for p in d.coordinator.store.partners.list() if p.name == "east-card"]
    process = d.start_node("east-card", policy)
    control = FlowerControl(d.coordinator.flower.address, d.coordinator.flower.ca_file)
    try:
        wait_until(lambda: any(n.node_id == int(row.node_id or 0) and n.status == "online"
                               for n in control.nodes()) or process.poll() is not None)
    finally:
        control.close()
    assert process.poll() is None, d.node_log("east-card")
    assert d.coordinator.store.partners.remove("east-card")
    exited(process)  # refused its next heartbeat (401), Flower's SuperNode shuts down
    started_again = d.start_node("east-card", policy)
    assert exited(started_again) != 0
    assert d.node_log("east-card").count("[code: 2004] this node key is not registered") == 1
    assert run_to_end(d) == ["north-bank"]


def test_a_node_stopped_with_sigterm_stops_its_supernode(d: Deployment) -> None:
    policy = join_only(d, "term-bank", d.policy("term-bank", 1))
    wait_until(lambda: "term-bank" in {p.name for p in d.coordinator.store.partners.list()
                                       if p.node_id is not None})
    node = d.start_node("term-bank", policy)
    wait_until(lambda: children(node.pid) != [])
    supernodes = children(node.pid)
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) is not None
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in supernodes))


def children(pid: int) -> list[int]:
    """Running processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(stat[1]) == pid and stat[0] != "Z":
            found.append(int(entry.name))
    return found


def test_the_partners_door_never_reaches_the_control_api(d: Deployment) -> None:
    """Even with a registered node key, only POST /v1/fleet/<call> is forwarded."""
    join_only(d, "west-bank", d.policy("west-bank", 0))
    wait_until(lambda: "west-bank" in {p.name for p in d.coordinator.store.partners.list()
                                       if p.node_id is not None})
    partner_keys(d.policy("west-bank", 0))
    key_path = PartnerPolicy.load(d.policy("west-bank", 0)).node_key_path()
    headers = {"content-type": "application/protobuf", **signed_by(key_path)}
    body = ListRunsRequest().SerializeToString()
    proxy = f"https://{d.coordinator.fleet_address}"
    with httpx.Client(verify=verify(d.coordinator), headers=headers, timeout=30) as client:
        for method, path in [("POST", "/v1/control/list-runs"), ("POST", "/v1/runtime/get-nodes"),
                             ("GET", "/v1/fleet/get-run"), ("POST", "/v1/fleet/GET-RUN"),
                             ("POST", "/v1/fleet/../control/list-runs"), ("GET", "/docs")]:
            assert client.request(method, proxy + path, content=body).status_code in (404, 405)
        # a signed Fleet call is forwarded: the SuperLink then finds the request names no
        # node of that key (the proxy has no answer of its own with this wording)
        # (the proxy reads the registered keys again at most once a second on a miss: the
        # key registered a moment ago may be refused that long, as a SuperNode would retry)
        wait_until(lambda: "not registered" not in client.post(
            proxy + "/v1/fleet/get-run", content=b"").text, timeout=10)
        forwarded = client.post(proxy + "/v1/fleet/get-run", content=b"")
        assert (forwarded.status_code, forwarded.json()["detail"]) == (
            401, "Invalid SuperNode authentication")
        # the key alone (public, after all) is not enough: unsigned, or signed by another key
        forger = d.workdir / "forger-key"
        if not forger.exists():
            create_node_key(forger)
        forged = {**headers, **{k: v for k, v in signed_by(forger).items()
                                if k != "flwr-public-key"}}
        for bad in ({k: v for k, v in headers.items() if k != "flwr-signature"}, forged):
            refused = httpx.post(proxy + "/v1/fleet/get-run", content=b"", headers=bad,
                                 verify=verify(d.coordinator))
            assert refused.status_code == 401 and "not signed by this node key" in refused.text


def test_fleet_proxy_trusts_no_client_header_and_bounds_bodies(d: Deployment) -> None:
    port = free_port()
    key = create_node_key(d.workdir / "proxy-test-key")
    proxy = create_fleet_proxy(d.coordinator.flower.address, lambda: {key},
                               allow=["10.20.0.0/16"], max_body=2048)
    open_proxy = create_fleet_proxy(d.coordinator.flower.address, lambda: {key}, max_body=2048)
    other = free_port()
    header = signed_by(d.workdir / "proxy-test-key")
    with Services([Listener(proxy, "127.0.0.1", port), Listener(open_proxy, "127.0.0.1", other)]):
        spoofed = httpx.post(f"http://127.0.0.1:{port}/v1/fleet/get-run", content=b"",
                             headers={**header, "X-Forwarded-For": "10.20.0.5",
                                      "X-Real-IP": "10.20.0.5", "Forwarded": "for=10.20.0.5"})
        assert spoofed.status_code == 403

        def chunks() -> Iterator[bytes]:
            yield from (b"x" * 1024 for _ in range(3))  # chunked: no Content-Length

        large = httpx.post(f"http://127.0.0.1:{other}/v1/fleet/push-object", content=chunks(),
                           headers=header)
        assert large.status_code == 413
        # calls that carry no model may not send more than a small body at all
        small = httpx.post(f"http://127.0.0.1:{other}/v1/fleet/get-run", headers=header,
                           content=b"x" * (2**20 + 1))
        assert small.status_code == 413


def test_api_over_tls_needs_the_right_ca(d: Deployment, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(d.token + "\n")
    args = ["run", "list", "--api-url", d.coordinator.api_url, "--token-file", str(token_file)]
    ok = sangsaeng(*args, "--ca-file", str(d.coordinator.ca_file))
    assert ok.returncode == 0, ok.stdout
    for ca in ([], ["--ca-file", str(ensure_ca(tmp_path / "other-ca"))]):
        refused = sangsaeng(*args, *ca)
        assert refused.returncode == 1
        assert "certificate is not trusted" in refused.stdout
    # a token is never sent in clear text beyond this machine
    clear = sangsaeng("run", "list", "--api-url", "http://coordinator.example:8000",
                      "--token-file", str(token_file))
    assert clear.returncode == 1 and "clear text" in clear.stdout


def signed_by(key_path: Path) -> dict[str, str]:
    """The headers a SuperNode with this key sends: its key, a timestamp, the signature."""
    key = serialization.load_ssh_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    timestamp = dt.datetime.now(dt.UTC).isoformat()
    return {"flwr-public-key": base64.b64encode(public_key_to_bytes(key.public_key())).decode(),
            "flwr-timestamp": timestamp,
            "flwr-signature": base64.b64encode(sign_message(key, timestamp.encode())).decode()}


def join_only(d: Deployment, name: str, policy: Path) -> Path:
    signing, node = partner_keys(policy)
    d.coordinator.store.partners.put(name, signing, node, replace=True)
    return policy


def wait_until(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    return deployment
