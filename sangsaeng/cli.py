"""The `sangsaeng` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sangsaeng.audit.cli import app as audit_app
from sangsaeng.client.cli import app as client_app
from sangsaeng.shared.task import TaskSpecError, load_task

from .admin_cli import app as admin_app
from .run_cli import app as run_app

app = typer.Typer(help="Sangsaeng: federated DP-SGD on partners' private tables.",
                  no_args_is_help=True, add_completion=False)
task_app = typer.Typer(help="Task specs (what a startup submits).", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(client_app, name="client")
app.add_typer(run_app, name="run")
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")
console = Console()


@app.command()
def server(
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

    from sangsaeng.server.coordinator import Coordinator
    from sangsaeng.server.fleet_proxy import LOOPBACK_ONLY
    from sangsaeng.server.settings import store_url

    workdir = workdir or Path.home() / ".sangsaeng" / "coordinator"
    try:
        allow = tuple(str(ipaddress.ip_network(c, strict=False)) for c in fleet_allow or [])
    except ValueError as err:
        console.print(f"[red]--fleet-allow: {escape(str(err))}[/]")
        raise typer.Exit(2) from None
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
        console.print(f"[red]the HTTP services stopped: {coordinator.services.error!r}[/]")
        raise typer.Exit(1)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where partner files, logs, store and model go.")]
    = Path(".sangsaeng-demo"),
    task: Annotated[Path | None, typer.Option(help="Task file (default: the Caravan task).")]
    = None,
    store_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in "
                                                  "the workdir).")] = None,
) -> None:
    """A whole federated DP run on loopback, driven through the API as a startup would:
    coordinator (SuperLink, Fleet proxy, API), 3 partner SuperNodes, real data; then the
    auditor's verification and report."""
    from sangsaeng.server.demo import run_demo
    from sangsaeng.server.store import COMPLETED, StoreSchemaError

    try:
        result = run_demo(workdir, task, store_url, console)
    except (TaskSpecError, StoreSchemaError) as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted: run stopped, every process shut down.[/]")
        raise typer.Exit(130) from None
    if result.run.status != COMPLETED or not result.verification.ok:
        raise typer.Exit(1)


@task_app.command("check")
def task_check(path: Path) -> None:
    """Validate a task file (.toml or .json) and print its hash."""
    try:
        spec = load_task(path)
    except TaskSpecError as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(2) from None
    console.print(f"ok: dataset '{spec.dataset}', {len(spec.features)} features, "
                  f"{spec.model.kind}, sha256 {spec.sha256()}")
