"""Real Flower processes on loopback: one SuperLink and partner SuperNodes.

Used by `sangsaeng server`, `sangsaeng demo` and the end-to-end tests. Every process gets
its own process group, so stopping it also stops the SuperExec/ServerApp/ClientApp
children it started.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sangsaeng.server import settings
from sangsaeng.shared.wire import NODE_CONFIG_POLICY

from .certificates import CA_DAYS, ensure_ca, issue_server

LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
PRIVATE_ENV = {"SANGSAENG_TOKEN"}  # an operator's or startup's token: no Flower process needs it
SUPERVISE_SECONDS = 1.0
RESTARTS_PER_MINUTE = 3
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartnerNode:
    """A partner's SuperNode: its name (for logs), its own policy file, and (for Flower's
    stock SuperNode only: `sangsaeng client node` takes it from the policy) its node key."""

    partner: str
    policy_path: Path
    node_key: Path | None = None

    def node_config(self) -> str:
        return f'{NODE_CONFIG_POLICY}="{self.policy_path.resolve()}"'  # TOML-quoted string



def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalDeployment:
    """Context manager: a SuperLink on loopback, plus one SuperNode per partner dialling
    it directly (tests of the Flower layer) or, via add_supernode, through a Fleet proxy."""

    workdir: Path
    store_url: str
    partners: list[PartnerNode] = field(default_factory=list)
    database: Path | None = None  # the SuperLink's own state; in memory if None
    # Run every run in Flower's simulation engine (virtual SuperNodes on Ray, sized by
    # the Control API's ConfigureSimulationFederation) instead of on real SuperNodes.
    simulation: bool = False
    pinned: bool = True  # partners' SuperNodes run only their own ClientApp (client/node.py)
    # The coordinator's own CA (made once in this folder): with it, the SuperLink serves
    # TLS on loopback and lets in only registered node keys (Flower's SuperNode
    # authentication), and SuperNodes sign every request with their partner's node key.
    # Without it, plain HTTP and no node identity (Flower-layer tests, simulation).
    internal_ca: Path | None = None
    port: int = field(default_factory=free_port)
    node_ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    fleet_addresses: set[str] = field(default_factory=set)
    superlink_failed: bool = False  # it kept dying and is no longer restarted

    @property
    def address(self) -> str:
        """SuperLink address: Fleet, Control and Runtime APIs share this one HTTP port,
        so it must stay private (partners go through fleet_proxy)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """The CA the SuperLink's certificate verifies against (None: plain HTTP)."""
        return self.internal_ca / "ca.pem" if self.internal_ca else None

    def __enter__(self) -> LocalDeployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        database = ["--database", str(self.database)] if self.database else []
        simulation = ["--simulation"] if self.simulation else []
        if self.internal_ca is None:
            security, identity = ["--insecure"], "reported"
        else:  # a fresh certificate at every start: rotating it is restarting
            ca = ensure_ca(self.internal_ca)
            tls = issue_server(self.internal_ca, self.internal_ca, [LOOPBACK], "superlink",
                               days=CA_DAYS)  # outlives any uptime; loopback only
            security, identity = ["--ssl-certfile", str(tls.certfile), "--ssl-keyfile",
                                  str(tls.keyfile), "--ssl-ca-certfile", str(ca),
                                  "--enable-supernode-auth"], "keys"
        self._superlink_argv = [
            "flower-superlink", *security, "--disable-runtime-dependency-installation",
            "--host", LOOPBACK, "--port", str(self.port), *database, *simulation]
        # The ServerApp inherits the store URL; from its file if it came from one, so that a
        # password stays out of every process's environment.
        from_file = (os.environ.get(settings.STORE_URL_FILE_ENV)
                     and settings.store_url() == self.store_url)
        store = {} if from_file else {settings.STORE_URL_ENV: self.store_url}
        self._superlink_env = {**store, settings.NODE_IDENTITY_ENV: identity}
        self._private_env = PRIVATE_ENV | ({settings.STORE_URL_ENV} if from_file else set())
        try:
            self.superlink = self._spawn("superlink", self._superlink_argv, self._superlink_env)
            self._await_port(self.port, self.superlink)
            self._stopping = threading.Event()
            threading.Thread(target=self._supervise, name="superlink-supervisor",
                             daemon=True).start()
            for partner in self.partners:
                self.add_supernode(partner, self.address, self.ca_file)
        except BaseException:
            self.stop()
            raise
        return self

    def add_supernode(self, partner: PartnerNode, fleet_address: str,
                      root_certificates: Path | None = None) -> None:
        """Start a partner's SuperNode dialling `fleet_address` (the SuperLink or a proxy),
        as a partner does: `sangsaeng client node`, which runs only the partner's installed
        ClientApp (with `pinned=False`, Flower's stock SuperNode, which runs the FAB's).
        Over TLS (verified with `root_certificates`) it signs with its policy's node key."""
        self.fleet_addresses.add(fleet_address)
        self.node_ports.append(free_port())
        tls = ["--insecure"]
        if root_certificates is not None:
            tls = ["--root-certificates", str(root_certificates)]
        if self.pinned:
            argv = ["sangsaeng", "client", "node", *tls, "--superlink", fleet_address,
                    "--runtime-port", str(self.node_ports[-1]),
                    "--policy", str(partner.policy_path.resolve())]
        else:
            if root_certificates is not None and partner.node_key is not None:
                tls += ["--auth-supernode-private-key", str(partner.node_key)]
            argv = ["flower-supernode", *tls, "--superlink", fleet_address,
                    "--host", LOOPBACK, "--port", str(self.node_ports[-1]),
                    "--node-config", partner.node_config()]
        self._spawn(f"supernode-{partner.partner}", argv)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _supervise(self) -> None:
        """Start the SuperLink again if it dies (on the same port and state: partners
        reconnect by themselves); at most RESTARTS_PER_MINUTE times a minute."""
        restarts: list[float] = []
        while not self._stopping.wait(SUPERVISE_SECONDS):
            if self.superlink.poll() is None:
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > RESTARTS_PER_MINUTE:
                log.error("flower-superlink keeps dying; not restarting it (see %s)",
                          self.log_path("superlink"))
                self.superlink_failed = True  # `sangsaeng server` stops on this
                return
            log.warning("flower-superlink exited (code %s); starting it again",
                        self.superlink.returncode)
            self.superlink = self._spawn("superlink", self._superlink_argv,
                                         self._superlink_env, append_log=True)

    def stop(self) -> None:
        """Stop every process of this deployment, including those Flower started
        (SuperExec, ServerApp, ClientApps; some in sessions of their own): SIGTERM once,
        then SIGKILL whatever is still running after STOP_TIMEOUT. Ctrl-C is ignored
        meanwhile, so a second one cannot leave processes behind."""
        if hasattr(self, "_stopping"):
            self._stopping.set()  # no restarts from here on
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                sent: set[int] = set()
                deadline = time.monotonic() + STOP_TIMEOUT
                while (pids := self.live_pids()) and time.monotonic() < deadline:
                    for pid in set(pids) - sent:
                        _kill(pid, sig)
                        sent.add(pid)
                    time.sleep(0.1)
            for proc in self.processes:
                proc.kill()  # a no-op for those already gone; then collect their status
                proc.wait()
            self.processes.clear()
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)

    def live_pids(self) -> list[int]:
        """Running processes whose command line names one of this deployment's addresses
        (every Flower process names the SuperLink's or its SuperNode's)."""
        addresses = {f"{LOOPBACK}:{port}" for port in [self.port, *self.node_ports]}
        addresses |= self.fleet_addresses
        return [pid for pid, argv in running_processes() if addresses.intersection(argv)]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
               append_log: bool = False) -> subprocess.Popen[bytes]:
        # Flower starts its helpers (flower-superexec, flwr-serverapp, ...) by name from PATH:
        # put this environment's scripts first, also when it was never "activated".
        scripts = str(Path(sys.executable).parent)
        path = os.pathsep.join([scripts, os.environ.get("PATH", "")])
        private = getattr(self, "_private_env", PRIVATE_ENV)
        inherited = {k: v for k, v in os.environ.items() if k not in private}
        with self.log_path(name).open("ab" if append_log else "wb") as output:
            process = subprocess.Popen(
                [str(Path(scripts) / argv[0]), *argv[1:]], stdout=output,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**inherited, "PATH": path, **(env or {})}, start_new_session=True,
            )
        self.processes.append(process)
        return process

    def _await_port(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"flower-superlink exited; see {self.log_path('superlink')}")
            with socket.socket() as s:
                if s.connect_ex((LOOPBACK, port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"flower-superlink did not listen on {port} in {READY_TIMEOUT:g} s")


def running_processes() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every running process, from /proc (Linux); zombies, which only wait
    for their parent to collect them, are left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError):
            continue
        if state != "Z" and argv != [""]:
            found.append((int(entry.name), argv))
    return found


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
