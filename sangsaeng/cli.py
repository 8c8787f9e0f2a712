"""The `sangsaeng` command: every role's CLI under one name (each lives with its role),
the startup's `run` and `catalogue` commands, task checks and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sangsaeng.audit.cli import app as audit_app
from sangsaeng.audit.uploads import verify_records
from sangsaeng.client.cli import app as client_app
from sangsaeng.empirical.cli import empirical_command
from sangsaeng.server.cli import VERIFIER, admin_app, serve
from sangsaeng.shared.cli import failing_on
from sangsaeng.shared.task import TaskSpecError, load_task

from .catalogue_cli import app as catalogue_app
from .run_cli import app as run_app

# The dashboard's verification page runs the auditor's checks: `sangsaeng server` gets them
# through the command's context.
app = typer.Typer(help="Sangsaeng: federated DP-SGD on partners' private tables.",
                  no_args_is_help=True, add_completion=False,
                  context_settings={"obj": {VERIFIER: verify_records}})
task_app = typer.Typer(help="Task specs (what a startup submits).", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(client_app, name="client")
app.add_typer(run_app, name="run")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(admin_app, name="admin")
# the empirical audit runs the partner's training code, which the audit role may not import
audit_app.command("empirical")(empirical_command)
app.add_typer(audit_app, name="audit")
app.command("server")(serve)
console = Console()


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where partner files, logs, store and model go.")]
    = Path(".sangsaeng-demo"),
    task: Annotated[Path | None, typer.Option(help="Task file (default: the Caravan task; "
                                              "sangsaeng/demo/reviews.toml: the text demo).")]
    = None,
    store_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in "
                                                  "the workdir).")] = None,
) -> None:
    """A whole federated DP run on loopback, driven through the API as a startup would:
    coordinator (SuperLink, Fleet proxy, API), 3 partner SuperNodes, real data; then the
    auditor's verification and report."""
    from sangsaeng.demo.data import DemoDataError
    from sangsaeng.demo.run import run_demo
    from sangsaeng.server.db import StoreSchemaError
    from sangsaeng.server.runs.states import COMPLETED

    try:
        with failing_on(TaskSpecError, StoreSchemaError, DemoDataError):
            result = run_demo(workdir, task, store_url, console)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted: run stopped, every process shut down.[/]")
        raise typer.Exit(130) from None
    if result.run.status != COMPLETED or not result.verification.ok:
        raise typer.Exit(1)


@task_app.command("check")
def task_check(path: Path) -> None:
    """Validate a task file (.toml or .json) and print its hash."""
    with failing_on(TaskSpecError):
        spec = load_task(path)
    console.print(f"ok: dataset '{spec.dataset}', {len(spec.features)} features, "
                  f"{spec.model.kind}, sha256 {spec.sha256()}")
