"""A real Flower deployment on loopback: one SuperLink and partner SuperNodes as processes.

Used by `sangsaeng demo` and the end-to-end tests. Every process gets its own process
group, so stopping it also stops the SuperExec/ServerApp/ClientApp children it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import settings

LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class PartnerNode:
    partner: str
    dataset: str
    data_path: Path

    def node_config(self) -> str:
        # string values need TOML quoting inside --node-config
        return (f'partner="{self.partner}" dataset="{self.dataset}" '
                f'data-path="{self.data_path.resolve()}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalDeployment:
    """Context manager: SuperLink + one SuperNode per partner, all on loopback."""

    workdir: Path
    store_url: str
    partners: list[PartnerNode]
    port: int = field(default_factory=free_port)
    node_ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """SuperLink address: Fleet, Control and Runtime APIs share this one HTTP port."""
        return f"{LOOPBACK}:{self.port}"

    def __enter__(self) -> LocalDeployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn("superlink", [
                "flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                "--host", LOOPBACK, "--port", str(self.port),
            ], env={settings.STORE_URL_ENV: self.store_url})
            self._await_port(self.port, self.processes[0])
            for partner in self.partners:
                self.node_ports.append(free_port())
                self._spawn(f"supernode-{partner.partner}", [
                    "flower-supernode", "--insecure", "--superlink", self.address,
                    "--host", LOOPBACK, "--port", str(self.node_ports[-1]),
                    "--node-config", partner.node_config(),
                ])
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def stop(self) -> None:
        """Stop every process and every process they started (SuperExec, ServerApp,
        ClientApps; some run in sessions of their own): SIGTERM first, SuperNodes before
        the SuperLink, then SIGKILL whatever is still alive after STOP_TIMEOUT."""
        family = [pid for proc in self.processes for pid in _descendants(proc.pid)]
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in family:
                _kill(pid, sig)
            while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
                time.sleep(0.05)
            deadline = time.monotonic() + STOP_TIMEOUT
        self.processes.clear()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        exe = Path(sys.executable).parent / argv[0]  # the entry points of this environment
        with self.log_path(name).open("wb") as log:
            self.processes.append(subprocess.Popen(
                [str(exe), *argv[1:]], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                start_new_session=True,
            ))

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



def _descendants(root: int) -> list[int]:
    """PIDs of every live process below `root`, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waits only for its parent to collect its exit status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
