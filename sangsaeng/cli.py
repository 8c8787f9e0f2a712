"""The `sangsaeng` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sangsaeng.client.cli import app as client_app
from sangsaeng.shared.task import TaskSpecError, load_task

app = typer.Typer(help="Sangsaeng: federated DP-SGD on partners' private tables.",
                  no_args_is_help=True, add_completion=False)
task_app = typer.Typer(help="Task specs (what a startup submits).", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(client_app, name="client")
console = Console()


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where partner files, logs, store and model go.")]
    = Path(".sangsaeng-demo"),
    task: Annotated[Path | None, typer.Option(help="Task file (default: the Caravan task).")]
    = None,
    store_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in "
                                                  "the workdir).")] = None,
) -> None:
    """Run a whole federated DP run on loopback: SuperLink, 3 partner SuperNodes, real data."""
    from sangsaeng.server.demo import run_demo
    from sangsaeng.server.store import COMPLETED

    try:
        result = run_demo(workdir, task, store_url, console)
    except TaskSpecError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted: run stopped, every process shut down.[/]")
        raise typer.Exit(130) from None
    if result.run.status != COMPLETED:
        raise typer.Exit(1)


@task_app.command("check")
def task_check(path: Path) -> None:
    """Validate a task file (.toml or .json) and print its hash."""
    try:
        spec = load_task(path)
    except TaskSpecError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(2) from None
    console.print(f"ok: dataset '{spec.dataset}', {len(spec.features)} features, "
                  f"{spec.model.kind}, sha256 {spec.sha256()}")
