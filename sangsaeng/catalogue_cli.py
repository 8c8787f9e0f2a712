"""`sangsaeng catalogue ...`: the datasets partners offer, as startups browse them through
the coordinator's API (schemas and rounded sizes, never rows)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from sangsaeng.shared.cli import CaOption, TokenOption, UrlOption, api_session, fail
from sangsaeng.shared.http import DEFAULT_API_URL

from .api_client import SangsaengApi
from .views import print_catalogue, print_dataset

app = typer.Typer(help="Startups: the datasets partners offer (schemas, never rows).",
                  no_args_is_help=True)
console = Console()


@app.command("list")
def list_datasets(api_url: UrlOption = DEFAULT_API_URL,
                  token: TokenOption = None, ca_file: CaOption = None) -> None:
    """Every dataset: its target, how many features, partners and (rounded) rows."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        entries = api.datasets()
    if not entries:
        console.print("the catalogue is empty: no dataset is offered yet")
        return
    print_catalogue(entries, console)


@app.command()
def show(name: Annotated[str, typer.Argument(metavar="NAME")],
         api_url: UrlOption = DEFAULT_API_URL,
         token: TokenOption = None, ca_file: CaOption = None) -> None:
    """A dataset's schema: each feature column with its kind and declared values, the
    target and its classes, the partners holding it and its rounded size."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        entry = api.dataset(name)
    if entry is None:
        fail(f"no dataset '{name}' in the catalogue (`sangsaeng catalogue list` shows them)")
    print_dataset(entry, console)
