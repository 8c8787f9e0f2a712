"""`sangsaeng run ...`: what a startup does, through the coordinator's API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sangsaeng.shared.cli import CaOption, TokenOption, UrlOption, api_session, failing_on
from sangsaeng.shared.http import DEFAULT_API_URL
from sangsaeng.shared.rest.runs import RunOut
from sangsaeng.shared.task import TaskSpecError, load_task

from .api_client import SangsaengApi
from .views import print_run, print_runs, watch_run

app = typer.Typer(help="Startups: start, follow and stop runs; take the model home.",
                  no_args_is_help=True)
console = Console()

def _exit_for(status: str) -> None:
    if status != "completed":
        raise typer.Exit(1)


@app.command()
def start(task_path: Annotated[Path, typer.Argument(metavar="TASK")],
          api_url: UrlOption = DEFAULT_API_URL,
          token: TokenOption = None, ca_file: CaOption = None,
          watch: Annotated[bool, typer.Option(help="Follow it until it ends.")] = False) -> None:
    """Start a run of a task file (.toml or .json); prints the run's id."""
    with failing_on(TaskSpecError):
        task = load_task(task_path)
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        run = api.start_run(task)
        console.print(f"started run {run.id} on '{run.dataset}' ({run.status}); follow it with "
                      f"`sangsaeng run watch {run.id}`")
        if watch:
            _exit_for(_watch(api, run.id).status)


@app.command("upload-model")
def upload_model(weights_path: Annotated[Path, typer.Argument(metavar="WEIGHTS")],
                 api_url: UrlOption = DEFAULT_API_URL,
                 token: TokenOption = None, ca_file: CaOption = None) -> None:
    """Upload base weights (a .safetensors file of a registry model's trained parameters);
    prints the sha256 to name as a task's `base_model` (and for partners' policies)."""
    if not weights_path.is_file():
        console.print(f"[red]no such file: {weights_path}[/]")
        raise typer.Exit(2)
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        uploaded = api.upload_model(weights_path.read_bytes())
    console.print(f"base model {uploaded.sha256} ({uploaded.size} bytes, "
                  f"{len(uploaded.tensors)} tensors); name it in your task as "
                  f'base_model = "{uploaded.sha256}"')


@app.command()
def watch(run_id: int, api_url: UrlOption = DEFAULT_API_URL,
                 token: TokenOption = None, ca_file: CaOption = None) -> None:
    """Follow a run live, round by round, until it ends (exit 1 unless it completed)."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        _exit_for(_watch(api, run_id).status)


def _watch(api: SangsaengApi, run_id: int) -> RunOut:
    run = watch_run(api, run_id, console)
    print_run(run, console)
    return run


@app.command("list")
def list_runs(api_url: UrlOption = DEFAULT_API_URL,
                 token: TokenOption = None, ca_file: CaOption = None) -> None:
    """Your runs (every run, for the admin and auditor roles)."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        print_runs(api.runs(), console)


@app.command()
def show(run_id: int, api_url: UrlOption = DEFAULT_API_URL,
                 token: TokenOption = None, ca_file: CaOption = None) -> None:
    """A run's status, metrics and ε per partner, round by round."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        print_run(api.run(run_id), console)


@app.command()
def stop(run_id: int, api_url: UrlOption = DEFAULT_API_URL,
                 token: TokenOption = None, ca_file: CaOption = None) -> None:
    """Ask the coordinator to stop a run."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        run = api.stop(run_id)
        console.print(f"run {run.id}: stop requested ({run.status})")


@app.command()
def model(run_id: int,
          output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the "
                                               "safetensors file.")],
          api_url: UrlOption = DEFAULT_API_URL,
          card: Annotated[Path | None, typer.Option(help="Also write the model card (JSON) "
                                                     "here.")] = None,
          token: TokenOption = None, ca_file: CaOption = None) -> None:
    """Download a run's model (safetensors, sha256-checked) and, optionally, its card."""
    with api_session(SangsaengApi, api_url, token, ca_file) as api:
        weights = api.model(run_id)
        card_json = api.card(run_id).model_dump_json(indent=2) if card else None
    _write_atomically(output, weights)
    console.print(f"model of run {run_id}: {output} ({len(weights)} bytes)")
    if card and card_json:
        _write_atomically(card, card_json.encode())
        console.print(f"model card: {card}")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    tmp.replace(path)
