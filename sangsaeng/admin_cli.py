"""`sangsaeng admin ...`: the operator's commands, run where the coordinator's store is."""

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

from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.catalogue import CatalogueError, DatasetEntry
from sangsaeng.server.settings import STORE_URL_ENV, store_url
from sangsaeng.server.store import Store
from sangsaeng.shared.signing import SigningKeyError, parse_public_key

app = typer.Typer(help="Operators: API tokens, the dataset catalogue and partners' keys.",
                  no_args_is_help=True)
token_app = typer.Typer(help="API tokens (bearer; only their hash is stored).",
                        no_args_is_help=True)
dataset_app = typer.Typer(help="The dataset catalogue startups browse.", no_args_is_help=True)
app.add_typer(token_app, name="token")
partner_app = typer.Typer(help="Partners and the public keys their ledger exports are "
                          "signed with.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(partner_app, name="partner")
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
    store.append_audit(actor=f"operator {user}@{socket.gethostname()}",
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
    try:
        token = create_token(store, name, role, tenant)
    except ValueError as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(2) from None
    _audit(store, "token create", f"'{name}', role {role.value}"
           + (f", tenant {tenant}" if tenant else ""))
    print(token)


@token_app.command("list")
def token_list(store_url: StoreOption = None) -> None:
    """Every token: id, holder, role, tenant, and whether it is revoked."""
    table = Table("id", "name", "role", "tenant", "created", "revoked")
    for t in _store(store_url).list_tokens():
        table.add_row(str(t.id), t.name, t.role, t.tenant or "-",
                      t.created_at.strftime("%Y-%m-%d %H:%M"),
                      t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "")
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int, store_url: StoreOption = None) -> None:
    """Revoke a token: it stops working at once."""
    store = _store(store_url)
    if not store.revoke_token(token_id):
        console.print(f"[red]no live token {token_id}[/]")
        raise typer.Exit(1)
    _audit(store, "token revoke", f"token {token_id}")
    console.print(f"token {token_id} revoked")


@dataset_app.command("add")
def dataset_add(path: Path, store_url: StoreOption = None) -> None:
    """Add (or replace) a catalogue entry from a .toml or .json file: name, description,
    features, target, partners, rows (published rounded to the nearest hundred)."""
    try:
        entry = DatasetEntry.from_file(path)
    except CatalogueError as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(2) from None
    store = _store(store_url)
    store.put_dataset(entry.name, entry.model_dump_json())
    _audit(store, "dataset add", f"'{entry.name}'")
    console.print(f"dataset '{entry.name}': {len(entry.features)} features, "
                  f"~{entry.rows} rows over {entry.partners} partners")


@dataset_app.command("list")
def dataset_list(store_url: StoreOption = None) -> None:
    table = Table("name", "features", "target", "partners", "rows (rounded)")
    for row in _store(store_url).list_datasets():
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
    try:
        parse_public_key(public_key)
    except SigningKeyError as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(2) from None
    store = _store(store_url)
    if not store.put_partner(name, public_key, replace=replace):
        console.print(f"[red]partner '{escape(name)}' already has a key; --replace to change "
                      "it[/]")
        raise typer.Exit(1)
    _audit(store, "partner add", f"'{name}', key {public_key}")
    console.print(f"partner '{escape(name)}' registered")


@partner_app.command("list")
def partner_list(store_url: StoreOption = None) -> None:
    table = Table("partner", "public key (Ed25519)", "registered")
    for p in _store(store_url).list_partners():
        table.add_row(p.name, p.public_key, p.registered_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)
