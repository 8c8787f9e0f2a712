"""The coordinator's side as one unit: the SuperLink on loopback, the Fleet proxy partners
dial, and the API startups and auditors use, every one over TLS. `sangsaeng server` runs it
until Ctrl-C; the demo and the tests run it on loopback with partner SuperNodes.

Two certificates: the operator's (`tls`), which partners and startups verify, on the API
and the Fleet proxy; and one from the coordinator's own CA in `workdir`/internal-ca for
the loopback SuperLink, which Flower's SuperNode authentication needs to run over TLS.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sangsaeng.server.api import create_app
from sangsaeng.server.db import Store
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.server.web.verification import Verifier

from .certificates import TlsFiles, issue_server
from .fleet_proxy import ANYWHERE, create_fleet_proxy
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
    fleet_allow: tuple[str, ...] = ANYWHERE  # partners' networks (CIDRs), a second fence
    # The API's and the Fleet proxy's certificate; None: one the internal CA issues for
    # the listening hosts (the demo, tests), which clients verify with `ca_file`.
    tls: TlsFiles | None = None
    # The auditor's checks for the dashboard's verification page (the audit role's; the
    # server does not import it). None: that page points to `sangsaeng audit verify`.
    verifier: Verifier | None = None

    def __post_init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.store = Store(self.store_url)  # a wrong store fails here, before any process
        if self.tls is not None:
            self.tls.check()  # so do missing or mismatched certificate files
        database = self.workdir / "superlink.db" if self.persistent_superlink else None
        self.flower = LocalDeployment(self.workdir / "logs", self.store_url, database=database,
                                      internal_ca=self.workdir / "internal-ca")

    @property
    def ca_file(self) -> Path | None:
        """The CA that verifies the API's and Fleet proxy's certificate, if it is the
        coordinator's own (None when the operator gave one)."""
        return None if self.tls is not None else self.flower.ca_file

    @property
    def api_url(self) -> str:
        return f"https://{_connectable(self.api_host)}:{self.api_port}"

    @property
    def fleet_address(self) -> str:
        return f"{_connectable(self.fleet_host)}:{self.fleet_port}"

    def __enter__(self) -> Coordinator:
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.flower)
            internal_ca = self.flower.ca_file
            assert internal_ca is not None
            control = FlowerControl(self.flower.address, root_certificates=internal_ca)
            stack.callback(control.close)
            hosts = sorted({self.api_host, self.fleet_host} - {"0.0.0.0", ""})
            tls = self.tls or issue_server(internal_ca.parent, self.workdir / "tls", hosts)
            fleet = create_fleet_proxy(
                self.flower.address, self.store.partners.admitted_node_keys, self.fleet_allow,
                ssl.create_default_context(cafile=internal_ca))
            self.services = stack.enter_context(Services([
                Listener(create_app(self.store, control, self.verifier), self.api_host,
                         self.api_port, tls),
                Listener(fleet, self.fleet_host, self.fleet_port, tls),
            ]))
            self._stack = stack.pop_all()
        return self

    def add_partner(self, partner: PartnerNode) -> None:
        """Start a partner's SuperNode here, dialling the Fleet proxy as a real one would
        (its node key must be registered: `store.partners.put(..., node_key=...)`)."""
        assert self.ca_file is not None, "a partner of the operator's certificate: start it"
        self.flower.add_supernode(partner, self.fleet_address, self.ca_file)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()  # services, then the Control client, then every Flower process


def _connectable(host: str) -> str:
    return LOOPBACK if host in ("0.0.0.0", "") else host
