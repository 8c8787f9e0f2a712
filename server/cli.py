"""The operator's commands: `sangsaeng server` runs the coordinator, `sangsaeng admin ...`
manages tokens, the catalogue, partners' keys and the store's schema (run where the
coordinator's store is)."""

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

from sangsaeng.shared.cli import REFUSED, USAGE, CaOption, fail, failing_on
from sangsaeng.shared.node_keys import NodeKeyError, parse_node_key
from sangsaeng.shared.rest.catalogue import CatalogueError, DatasetEntry
from sangsaeng.shared.signing import SigningKeyError, parse_public_key
from sangsaeng.shared.tables import numbers, print_table

from . import admin
from .accounts import Role
from .db import Store, StoreSchemaError
from .db.engine import store_engine
from .db.partners import PartnerKeyTaken
from .db.schema import upgrade
from .settings import STORE_URL_ENV, store_url

admin_app = typer.Typer(help="Operators: API tokens, the dataset catalogue, partners' keys "
                        "and the store's schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (bearer; only their hash is stored).",
                        no_args_is_help=True)
dataset_app = typer.Typer(help="The dataset catalogue startups browse.", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")
partner_app = typer.Typer(help="Partners: the key their SuperNode authenticates with, and the "
                          "one their ledger exports are signed with.", no_args_is_help=True)
admin_app.add_typer(dataset_app, name="dataset")
admin_app.add_typer(partner_app, name="partner")
store_app = typer.Typer(help="The coordinator's store: its schema's revision.",
                        no_args_is_help=True)
admin_app.add_typer(store_app, name="store")
console = Console()
# ctx.obj[<this>]: the auditor's checks for the dashboard, handed in by the command that
# assembles the roles (the server does not import the audit role)
VERIFIER = "verifier"

StoreOption = Annotated[str | None, typer.Option(
    "--store-url", envvar=STORE_URL_ENV, show_default=False,
    help="SQLAlchemy URL of the coordinator's store (default: ~/.sangsaeng/sangsaeng.db).")]


def _url(url: str | None) -> str:
    return url or store_url()


def _store(url: str | None) -> Store:
    with failing_on(StoreSchemaError, code=REFUSED):
        return Store(_url(url))


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
        row, token = admin.issue_token(store, name, role, tenant)
    _audit(store, "token create", admin.token_detail(row))
    print(token)


@token_app.command("list")
def token_list(store_url: StoreOption = None) -> None:
    """Every token: id, holder, role, tenant, and whether it is revoked."""
    wide, narrow = Table(), Table()
    for table in (wide, narrow):
        table.add_column("id", justify="right", no_wrap=True)
        table.add_column("name")  # the holder, in words: wraps between them
        table.add_column("role", no_wrap=True)
        table.add_column("tenant", no_wrap=True)
    wide.add_column("created", no_wrap=True)
    wide.add_column("revoked", no_wrap=True)
    narrow.add_column("created\nrevoked", no_wrap=True)  # narrow terminals: one column
    for t in _store(store_url).tokens.list():
        created = t.created_at.strftime("%Y-%m-%d %H:%M")
        revoked = t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else ""
        about = [str(t.id), escape(t.name), t.role, escape(t.tenant or "-")]
        wide.add_row(*about, created, revoked)
        narrow.add_row(*about, f"{created}\n{revoked}" if revoked else created)
    print_table(console, wide, narrow)


@token_app.command("revoke")
def token_revoke(token_id: int, store_url: StoreOption = None) -> None:
    """Revoke a token: it stops working at once."""
    store = _store(store_url)
    with failing_on(admin.NotFound, code=REFUSED):
        row = admin.revoke_token(store, token_id)
    _audit(store, "token revoke", admin.token_detail(row))
    console.print(f"token {token_id} revoked")


@dataset_app.command("add")
def dataset_add(path: Path, store_url: StoreOption = None) -> None:
    """Add (or replace) a catalogue entry from a .toml or .json file: name, description,
    features, target, partners, rows (published rounded to the nearest hundred)."""
    with failing_on(CatalogueError):
        entry = DatasetEntry.from_file(path)
    store = _store(store_url)
    replaced = admin.put_dataset(store, entry)
    _audit(store, "dataset add", f"{'replaced' if replaced else 'added'} "
           + admin.dataset_detail(entry))
    console.print(f"dataset '{entry.name}': {len(entry.features)} features, "
                  f"~{entry.rows} rows over {entry.partners} partners")


@dataset_app.command("list")
def dataset_list(store_url: StoreOption = None) -> None:
    wide = Table()
    wide.add_column("name", no_wrap=True)
    numbers(wide, ["features"])
    wide.add_column("target", no_wrap=True)
    numbers(wide, ["partners", "rows (rounded)"])
    # Narrow terminals: the target on a line under the name, shorter headers.
    narrow = Table()
    narrow.add_column("name\ntarget")
    numbers(narrow, ["features", "partners", "rows\n(rounded)"])
    for row in _store(store_url).catalogue.list():
        e = DatasetEntry.model_validate_json(row.entry_json)
        sizes = [str(len(e.features)), str(e.partners), str(e.rows)]
        wide.add_row(e.name, sizes[0], escape(e.target.name), *sizes[1:])
        narrow.add_row(f"{e.name}\n{escape(e.target.name)}", *sizes)
    print_table(console, wide, narrow)


@partner_app.command("add")
def partner_add(
    name: Annotated[str, typer.Argument(help="The partner's name, as in its policy file.")],
    public_key: Annotated[str, typer.Option(help="Its Ed25519 public key, as `sangsaeng "
                                                 "client key show` prints it.")],
    node_key: Annotated[str | None, typer.Option(
        help="Its node's public key, as `sangsaeng client node-key show` prints it (the line, "
             "or a file holding it). Without one, its node cannot join runs.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace keys registered before.")] = False,
    store_url: StoreOption = None,
) -> None:
    """Register a partner: the coordinator lets its node in by its node key (within
    seconds, if it is running) and checks its ledger exports against its signing key."""
    with failing_on(SigningKeyError, NodeKeyError):  # before the store: changes nothing
        parse_public_key(public_key)
        node = parse_node_key(_text_or_file(node_key)) if node_key else None
    store = _store(store_url)
    with failing_on(PartnerKeyTaken, code=1), failing_on(admin.BadName):
        try:
            row = admin.register_partner(store, name, public_key, node, replace=replace)
        except admin.AlreadyRegistered:
            fail(f"partner '{name}' is registered; --replace to change its keys")
    _audit(store, "partner add", admin.partner_detail(row))
    console.print(f"partner '{escape(name)}' registered"
                  + ("" if row.node_key else " (no node key: its node cannot join runs)"))


@partner_app.command("remove")
def partner_remove(name: str, store_url: StoreOption = None) -> None:
    """Cut a partner off: its node is refused from its next request on. Its records and
    keys stay, so what it did remains verifiable."""
    store = _store(store_url)
    with failing_on(admin.NotFound, code=REFUSED):
        row = admin.remove_partner(store, name)
    _audit(store, "partner remove", admin.partner_detail(row))
    console.print(f"partner '{escape(name)}' removed; its node is refused within seconds")


@partner_app.command("list")
def partner_list(store_url: StoreOption = None) -> None:
    # A node key's OpenSSH line (about 200 characters) fits no terminal: its last 16
    # characters tell keys apart; the whole line is what the partner's `sangsaeng client
    # node-key show` prints and what `partner add --node-key` registered.
    table = Table()
    for col in ["partner", "signing key (Ed25519)", "node key (last 16)", "node id",
                "registered", "removed"]:
        table.add_column(col, no_wrap=True)
    for p in _store(store_url).partners.list():
        table.add_row(escape(p.name), p.public_key, p.node_key[-16:] if p.node_key else "-",
                      p.node_id or "-", p.registered_at.strftime("%Y-%m-%d %H:%M"),
                      p.removed_at.strftime("%Y-%m-%d %H:%M") if p.removed_at else "")
    # Narrow terminals (under about 150 columns): a record per partner.
    print_table(console, table)


def _text_or_file(value: str) -> str:
    path = Path(value)
    return path.read_text() if len(value) < 4096 and path.is_file() else value


@admin_app.command("certificates")
def certificates(
    out: Annotated[Path, typer.Option(help="Folder for ca.pem, ca.key, server.pem and "
                                           "server.key.")],
    host: Annotated[list[str], typer.Option(help="A name or address partners and startups "
                                                 "reach the coordinator by; repeat for more.")],
) -> None:
    """Make a CA (kept if the folder has one) and a server certificate from it for `host`s
    (and localhost). Give partners and startups ca.pem; keep ca.key offline. Issuing again
    and restarting the server rotates the certificate."""
    from .deployment.certificates import CertificateError, ensure_ca, issue_server

    with failing_on(CertificateError, code=1):
        ca = ensure_ca(out)
    files = issue_server(out, out, host)
    console.print(f"CA {ca}; server certificate {files.certfile} and key {files.keyfile} "
                  f"for {', '.join(host)}")


@admin_app.command("probe")
def probe(api_url: Annotated[str, typer.Option()] = "https://127.0.0.1:8000",
          ca_file: CaOption = None) -> None:
    """Exit 0 if the coordinator answers ready (a container's health command)."""
    import httpx

    from sangsaeng.shared.http import ApiError, tls_verification

    try:
        answer = httpx.get(f"{api_url.rstrip('/')}/api/v1/ready", timeout=5,
                           verify=tls_verification(ca_file))
    except (httpx.HTTPError, ApiError) as err:
        fail(f"not ready: {type(err).__name__}: {err}")
    if answer.status_code != 200:
        fail(f"not ready: {answer.status_code} {answer.text[:200]}")
    console.print("ready")


@store_app.command("upgrade")
def store_upgrade(store_url: StoreOption = None) -> None:
    """Bring the store's schema to this release's head revision: run it (after a backup)
    before starting a new release. Running it again, or twice at once, changes nothing."""
    engine = store_engine(_url(store_url))
    try:
        with failing_on(StoreSchemaError, code=REFUSED):
            found, head = upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"store: {escape(repr(engine.url))}\nrevision before: {found}\n"
                  f"revision after: {head} (head)")
    if found.revision == head:
        console.print("already at the head revision: nothing to do")
    _audit(_store(store_url), "store upgrade",
           f"{found.revision or 'empty'} -> {head}" if found.revision != head
           else f"{head}, already at head")


def serve(
    ctx: typer.Context,
    api_host: Annotated[str, typer.Option(help="Where startups and auditors reach the API.")]
    = "127.0.0.1",
    api_port: Annotated[int, typer.Option()] = 8000,
    fleet_host: Annotated[str, typer.Option(help="Where partners' SuperNodes reach the Fleet "
                                                 "API (the only Flower port exposed).")]
    = "127.0.0.1",
    fleet_port: Annotated[int, typer.Option()] = 9092,
    fleet_allow: Annotated[list[str] | None, typer.Option(
        help="Only from this network (CIDR) may nodes reach the Fleet proxy; repeat for "
             "more [default: any; partners are known by their node keys].")] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="Logs, the SuperLink's own state and the coordinator's internal CA "
             "[default: ~/.sangsaeng/coordinator].")] = None,
    tls_certfile: Annotated[Path | None, typer.Option(
        help="The certificate (PEM chain) the API and the Fleet proxy serve "
             "(`sangsaeng admin certificates` makes one).")] = None,
    tls_keyfile: Annotated[Path | None, typer.Option(help="Its private key (PEM).")] = None,
) -> None:
    """Run the coordinator until Ctrl-C: SuperLink on loopback, Fleet proxy, API, each
    over TLS; only registered partners' node keys are let in.

    The SuperLink's Control API stays private; partners reach only the Fleet proxy, startups
    and auditors the API. The store is SANGSAENG_STORE_URL (or the file
    SANGSAENG_STORE_URL_FILE names)."""
    import ipaddress
    import signal
    import time

    from sqlalchemy.engine import make_url

    from .deployment.certificates import CertificateError, TlsFiles
    from .deployment.coordinator import Coordinator
    from .deployment.fleet_proxy import ANYWHERE

    workdir = workdir or Path.home() / ".sangsaeng" / "coordinator"
    try:
        allow = tuple(str(ipaddress.ip_network(c, strict=False)) for c in fleet_allow or [])
    except ValueError as err:
        fail(f"--fleet-allow: {err}", USAGE)
    if tls_certfile is None or tls_keyfile is None:
        fail("give --tls-certfile and --tls-keyfile: the API and the Fleet proxy serve TLS "
             "only (`sangsaeng admin certificates` makes a CA and a certificate)", USAGE)
    # a store behind head is refused before anything starts: upgrade it first
    with failing_on(StoreSchemaError, code=REFUSED), failing_on(CertificateError, OSError):
        coordinator = Coordinator(workdir, store_url(), api_host, api_port, fleet_host,
                                  fleet_port, persistent_superlink=True,
                                  fleet_allow=allow or ANYWHERE,
                                  tls=TlsFiles(tls_certfile, tls_keyfile),
                                  verifier=(ctx.obj or {}).get(VERIFIER))

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    shown_store = make_url(coordinator.store.url).render_as_string(hide_password=True)
    with coordinator:
        console.print(f"dashboard: {coordinator.api_url}/  ·  API: {coordinator.api_url}/docs"
                      f"  ·  partners' SuperNodes: --superlink {coordinator.fleet_address} (from "
                      f"{', '.join(coordinator.fleet_allow)})  ·  store: "
                      f"{shown_store}\nCtrl-C stops it.")
        try:
            while coordinator.services.alive() and not coordinator.flower.superlink_failed:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping...")
    if not coordinator.services.alive() and coordinator.services.error is not None:
        fail(f"the HTTP services stopped: {coordinator.services.error!r}")
    if coordinator.flower.superlink_failed:
        fail(f"the SuperLink kept dying; see {coordinator.flower.log_path('superlink')}")
