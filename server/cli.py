"""The operator's commands: `sangsaeng server` runs the coordinator, `sangsaeng admin ...`
manages tokens, the catalogue and partners' keys (run where the coordinator's store is)."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sangsaeng.shared.cli import USAGE, fail, failing_on
from sangsaeng.shared.rest.catalogue import CatalogueError, DatasetEntry
from sangsaeng.shared.signing import SigningKeyError, parse_public_key

from .accounts import Role, create_token
from .db import Store
from .settings import STORE_URL_ENV, store_url

admin_app = typer.Typer(help="Operators: API tokens, the dataset catalogue and partners' "
                        "keys.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (bearer; only their hash is stored).",
                        no_args_is_help=True)
dataset_app = typer.Typer(help="The dataset catalogue startups browse.", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")
partner_app = typer.Typer(help="Partners and the public keys their ledger exports are "
                          "signed with.", no_args_is_help=True)
admin_app.add_typer(dataset_app, name="dataset")
admin_app.add_typer(partner_app, name="partner")
console = Console()

StoreOption = Annotated[str | None, typer.Option(
    "--store-url", envvar=STORE_URL_ENV, show_default=False,
    help="SQLAlchemy URL of the coordinator's store (default: ~/.sangsaeng/sangsaeng.db).")]


def _store(url: str | None) -> Store:
    return Store(url or store_url())


def _audit(store: Store, action: str, detail: str) -> None:
    """Operator commands change what the API serves: they go in the audit log too."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        user = f"uid {os.getuid()}"
    store.audit_log.append(actor=f"operator {user}@{socket.gethostname()}",
                           role="admin", tenant=None, action=f"cli: admin {action}",
                           outcome="ok", detail=detail)


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="What the token may do.")],
    name: Annotated[str, typer.Option(help="Who holds it (for the operator's records).")],
    tenant: Annotated[str | None, typer.Option(help="The startup tenant (startup role "
                                                    "only).")] = None,
    store_url: StoreOption = None,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    store = _store(store_url)
    with failing_on(ValueError):
        token = create_token(store, name, role, tenant)
    _audit(store, "token create", f"'{name}', role {role.value}"
           + (f", tenant {tenant}" if tenant else ""))
    print(token)


@token_app.command("list")
def token_list(store_url: StoreOption = None) -> None:
    """Every token: id, holder, role, tenant, and whether it is revoked."""
    table = Table("id", "name", "role", "tenant", "created", "revoked")
    for t in _store(store_url).tokens.list():
        table.add_row(str(t.id), t.name, t.role, t.tenant or "-",
                      t.created_at.strftime("%Y-%m-%d %H:%M"),
                      t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "")
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int, store_url: StoreOption = None) -> None:
    """Revoke a token: it stops working at once."""
    store = _store(store_url)
    if not store.tokens.revoke(token_id):
        fail(f"no live token {token_id}")
    _audit(store, "token revoke", f"token {token_id}")
    console.print(f"token {token_id} revoked")


@dataset_app.command("add")
def dataset_add(path: Path, store_url: StoreOption = None) -> None:
    """Add (or replace) a catalogue entry from a .toml or .json file: name, description,
    features, target, partners, rows (published rounded to the nearest hundred)."""
    with failing_on(CatalogueError):
        entry = DatasetEntry.from_file(path)
    store = _store(store_url)
    store.catalogue.put(entry.name, entry.model_dump_json())
    _audit(store, "dataset add", f"'{entry.name}'")
    console.print(f"dataset '{entry.name}': {len(entry.features)} features, "
                  f"~{entry.rows} rows over {entry.partners} partners")


@dataset_app.command("list")
def dataset_list(store_url: StoreOption = None) -> None:
    table = Table("name", "features", "target", "partners", "rows (rounded)")
    for row in _store(store_url).catalogue.list():
        e = DatasetEntry.model_validate_json(row.entry_json)
        table.add_row(e.name, str(len(e.features)), e.target.name, str(e.partners), str(e.rows))
    console.print(table)


@partner_app.command("add")
def partner_add(
    name: Annotated[str, typer.Argument(help="The partner's name, as in its policy file.")],
    public_key: Annotated[str, typer.Option(help="Its Ed25519 public key, as `sangsaeng "
                                                 "client key show` prints it.")],
    replace: Annotated[bool, typer.Option(help="Replace a key registered before.")] = False,
    store_url: StoreOption = None,
) -> None:
    """Register the key a partner signs its ledger exports with (auditors check them)."""
    with failing_on(SigningKeyError):
        parse_public_key(public_key)
    store = _store(store_url)
    if not store.partners.put(name, public_key, replace=replace):
        fail(f"partner '{name}' already has a key; --replace to change it")
    _audit(store, "partner add", f"'{name}', key {public_key}")
    console.print(f"partner '{escape(name)}' registered")


@partner_app.command("list")
def partner_list(store_url: StoreOption = None) -> None:
    table = Table("partner", "public key (Ed25519)", "registered")
    for p in _store(store_url).partners.list():
        table.add_row(p.name, p.public_key, p.registered_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


def serve(
    api_host: Annotated[str, typer.Option(help="Where startups and auditors reach the API.")]
    = "127.0.0.1",
    api_port: Annotated[int, typer.Option()] = 8000,
    fleet_host: Annotated[str, typer.Option(help="Where partners' SuperNodes reach the Fleet "
                                                 "API (the only Flower port exposed).")]
    = "127.0.0.1",
    fleet_port: Annotated[int, typer.Option()] = 9092,
    fleet_allow: Annotated[list[str] | None, typer.Option(
        help="A partner network (CIDR) allowed to reach the Fleet proxy; repeat for more "
             "[default: loopback only].")] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="Logs and the SuperLink's own state [default: ~/.sangsaeng/coordinator].")] = None,
) -> None:
    """Run the coordinator until Ctrl-C: SuperLink on loopback, Fleet proxy, API.

    The SuperLink's Control API stays private; partners reach only the Fleet proxy, startups
    and auditors the API. The store is SANGSAENG_STORE_URL."""
    import ipaddress
    import signal
    import time

    from .deployment.coordinator import Coordinator
    from .deployment.fleet_proxy import LOOPBACK_ONLY

    workdir = workdir or Path.home() / ".sangsaeng" / "coordinator"
    try:
        allow = tuple(str(ipaddress.ip_network(c, strict=False)) for c in fleet_allow or [])
    except ValueError as err:
        fail(f"--fleet-allow: {err}", USAGE)
    coordinator = Coordinator(workdir, store_url(), api_host, api_port, fleet_host, fleet_port,
                              persistent_superlink=True, fleet_allow=allow or LOOPBACK_ONLY)
    def on_term(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    with coordinator:
        console.print(f"API: {coordinator.api_url}/docs  ·  partners' SuperNodes: "
                      f"--superlink {coordinator.fleet_address} (from "
                      f"{', '.join(coordinator.fleet_allow)})  ·  store: "
                      f"{coordinator.store.url}\nCtrl-C stops it.")
        try:
            while coordinator.services.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping...")
    if not coordinator.services.alive() and coordinator.services.error is not None:
        fail(f"the HTTP services stopped: {coordinator.services.error!r}")
