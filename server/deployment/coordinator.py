"""The coordinator's side as one unit: the SuperLink on a private address, the Fleet
proxy partners dial, and the API startups and auditors use. `sangsaeng server` runs it
until Ctrl-C; the demo and the tests run it on loopback with partner SuperNodes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sangsaeng.server.api import create_app
from sangsaeng.server.db import Store
from sangsaeng.server.flower.control import FlowerControl

from .fleet_proxy import LOOPBACK_ONLY, create_fleet_proxy
from .flower_processes import LOOPBACK, LocalDeployment, PartnerNode, free_port
from .listeners import Listener, Services


@dataclass
class Coordinator:
    workdir: Path  # logs (and the SuperLink's state, if persistent)
    store_url: str
    api_host: str = LOOPBACK
    api_port: int = field(default_factory=free_port)
    fleet_host: str = LOOPBACK
    fleet_port: int = field(default_factory=free_port)
    persistent_superlink: bool = False  # keep Flower's run state in workdir across restarts
    fleet_allow: tuple[str, ...] = LOOPBACK_ONLY  # partners' networks (CIDRs)

    def __post_init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.store = Store(self.store_url)  # a wrong store fails here, before any process
        database = self.workdir / "superlink.db" if self.persistent_superlink else None
        self.flower = LocalDeployment(self.workdir / "logs", self.store_url, database=database)

    @property
    def api_url(self) -> str:
        return f"http://{_connectable(self.api_host)}:{self.api_port}"

    @property
    def fleet_address(self) -> str:
        return f"{_connectable(self.fleet_host)}:{self.fleet_port}"

    def __enter__(self) -> Coordinator:
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.flower)
            control = FlowerControl(self.flower.address)
            stack.callback(control.close)
            self.services = stack.enter_context(Services([
                Listener(create_app(self.store, control), self.api_host, self.api_port),
                Listener(create_fleet_proxy(self.flower.address, self.fleet_allow),
                         self.fleet_host, self.fleet_port),
            ]))
            self._stack = stack.pop_all()
        return self

    def add_partner(self, partner: PartnerNode) -> None:
        """Start a partner's SuperNode here, dialling the Fleet proxy as a real one would."""
        self.flower.add_supernode(partner, self.fleet_address)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()  # services, then the Control client, then every Flower process


def _connectable(host: str) -> str:
    return LOOPBACK if host in ("0.0.0.0", "") else host
