"""How runs look in the terminal: live progress from the API's events, and tables."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sangsaeng.shared.rest.runs import RunOut, RunSummary
from sangsaeng.shared.wire import BASE_ROUND

from .api_client import SangsaengApi


def watch_run(api: SangsaengApi, run_id: int, console: Console) -> RunOut:
    """Show each round as it happens (metrics, ε per partner) and partners' refusals, until
    the run ends; return it as it ended."""
    run = api.run(run_id)
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} rounds"), TimeElapsedColumn(),
                        console=console)
    bar = progress.add_task(f"run {run_id}: {run.status}", total=run.rounds_planned)
    with progress:
        for event in api.events(run_id):
            data = event.data
            if event.kind == "round":
                m = data["metrics"]
                spent = "  ".join(f"{p['partner']} {p['epsilon']:.2f}/{p['lifetime_epsilon']:.2f}"
                                  for p in data["privacy"])
                base = data["round"] == BASE_ROUND
                label = "base model" if base else f"round {data['round']}/{run.rounds_planned}"
                progress.console.print(
                    f"{label}  loss {fmt(m.get('loss'))}  accuracy {fmt(m.get('accuracy'))}  "
                    f"ε run/lifetime: {spent or '-'}")
                if not base:
                    progress.advance(bar)
            elif event.kind == "partner_error":
                progress.console.print(f"[yellow]round {data['round']}: "
                                       f"{escape(data['message'])}[/]")
            elif event.kind in ("status", "end"):
                progress.update(bar, description=f"run {run_id}: {data['status']}")
    return api.run(run_id)


def print_run(run: RunOut, console: Console) -> None:
    partners = sorted({p.partner for r in run.rounds for p in r.privacy})
    table = Table(title=f"Run {run.id} (Flower run {run.flower_run_id}): {run.status}")
    for col in ["round", "loss", "accuracy", *[f"ε {p}" for p in partners]]:
        table.add_column(col, justify="right", overflow="fold")
    for row in run.rounds:
        eps = {p.partner: p.epsilon for p in row.privacy}
        table.add_row(str(row.round), fmt(row.metrics.get("loss")),
                      fmt(row.metrics.get("accuracy")),
                      *[fmt(eps.get(p), 2) for p in partners])
    console.print(table)
    if run.receipt is not None:
        print_receipt(run, console)
    if run.reason:
        console.print(f"[red]Run {run.status}:[/] {escape(run.reason)}")


def print_receipt(run: RunOut, console: Console) -> None:
    """Base model → improved model, per metric, on the same partners' holdouts, and what
    each partner spent for it."""
    receipt = run.receipt
    assert receipt is not None
    table = Table(title=f"Receipt: base model (round 0, {receipt.base_partners} partners) → "
                        f"round {receipt.final_round} ({receipt.final_partners} partners)")
    for col in ["metric", "base", "improved", "change"]:
        table.add_column(col, justify="right" if col != "metric" else "left")
    for m in receipt.metrics:
        table.add_row(m.metric, fmt(m.base), fmt(m.improved), f"{m.improved - m.base:+.3f}")
    console.print(table)
    last = {p.partner: p for r in run.rounds for p in r.privacy}
    console.print("ε each partner spent on this run, the receipt's releases included: " + (
        ", ".join(f"{name} {p.epsilon:.2f}" for name, p in sorted(last.items())) or "-"))


def print_runs(runs: list[RunSummary], console: Console) -> None:
    table = Table(title="Runs")
    for col in ["id", "dataset", "owner", "status", "rounds", "started", "reason"]:
        table.add_column(col, overflow="fold")
    for run in runs:
        table.add_row(str(run.id), run.dataset, run.owner or "-", run.status,
                      f"{run.rounds_done}/{run.rounds_planned}",
                      run.started_at.strftime("%Y-%m-%d %H:%M:%S"), run.reason or "")
    console.print(table)


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
