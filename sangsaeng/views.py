"""How runs look in the terminal: live progress from the API's events, and tables."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sangsaeng.shared.rest.catalogue import ROW_ROUNDING, DatasetEntry
from sangsaeng.shared.rest.runs import RunOut, RunSummary
from sangsaeng.shared.tables import numbers, print_table
from sangsaeng.shared.task import CategoricalFeature, NumericFeature
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
    title = f"Run {run.id} (Flower run {run.flower_run_id}): {run.status}"
    wide = Table(title=title)  # a column per partner's ε
    numbers(wide, ["round", "loss", "accuracy", *[f"ε {escape(p)}" for p in partners]])
    # Narrow terminals: a line per round and partner, so long partner names cost one column.
    narrow = Table(title=title)
    numbers(narrow, ["round", "loss", "accuracy"])
    narrow.add_column("partner", no_wrap=True)
    numbers(narrow, ["ε"])
    for row in run.rounds:
        eps = {p.partner: p.epsilon for p in row.privacy}
        metrics = [str(row.round), fmt(row.metrics.get("loss")),
                   fmt(row.metrics.get("accuracy"))]
        wide.add_row(*metrics, *[fmt(eps.get(p), 2) for p in partners])
        for i, p in enumerate(sorted(eps) or ["-"]):
            narrow.add_row(*(metrics if i == 0 else ["", "", ""]), escape(p),
                           fmt(eps.get(p), 2))
    print_table(console, wide, narrow)
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
    table.add_column("metric", no_wrap=True)
    numbers(table, ["base", "improved", "change"])
    for m in receipt.metrics:
        table.add_row(m.metric, fmt(m.base), fmt(m.improved), f"{m.improved - m.base:+.3f}")
    print_table(console, table)
    last = {p.partner: p for r in run.rounds for p in r.privacy}
    console.print("ε each partner spent on this run, the receipt's releases included: " + (
        ", ".join(f"{name} {p.epsilon:.2f}" for name, p in sorted(last.items())) or "-"))


def print_runs(runs: list[RunSummary], console: Console) -> None:
    wide = Table(title="Runs")
    wide.add_column("id", justify="right", no_wrap=True)
    for col in ["dataset", "owner", "status", "rounds", "started"]:
        wide.add_column(col, no_wrap=True)
    wide.add_column("reason")  # prose: wraps between words
    # Narrow terminals: owner and reason go on lines of their own under the dataset, and
    # the start's date and time take a line each.
    narrow = Table(title="Runs")
    narrow.add_column("id", justify="right", no_wrap=True)
    narrow.add_column("dataset")
    for col in ["status", "rounds", "started"]:
        narrow.add_column(col, no_wrap=True)
    for run in runs:
        rounds = f"{run.rounds_done}/{run.rounds_planned}"
        wide.add_row(str(run.id), escape(run.dataset), escape(run.owner or "-"), run.status,
                     rounds, run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                     escape(run.reason or ""))
        about = escape(run.dataset) + "".join(
            f"\n{label}: {escape(value)}" for label, value in [("owner", run.owner),
                                                              ("reason", run.reason)] if value)
        narrow.add_row(str(run.id), about, run.status, rounds,
                       run.started_at.strftime("%Y-%m-%d\n%H:%M:%S"))
    print_table(console, wide, narrow)


def print_catalogue(entries: list[DatasetEntry], console: Console) -> None:
    """The datasets partners offer: schema in short, who holds it, its rounded size."""
    title = "Catalogue (schemas and rounded sizes; partners never send rows)"
    wide = Table(title=title)
    wide.add_column("name", no_wrap=True)
    numbers(wide, ["features"])
    wide.add_column("target", no_wrap=True)
    numbers(wide, ["partners", "rows (rounded)"])
    wide.add_column("description")  # prose: wraps between words
    # Narrow terminals: target and description on lines under the name.
    narrow = Table(title=title)
    narrow.add_column("dataset")
    numbers(narrow, ["features", "partners", "rows\n(rounded)"])
    for e in entries:
        sizes = [str(len(e.features)), str(e.partners), f"{e.rows:,}"]
        wide.add_row(e.name, sizes[0], escape(e.target.name), *sizes[1:],
                     escape(e.description))
        narrow.add_row(f"{e.name}\ntarget: {escape(e.target.name)}"
                       + (f"\n{escape(e.description)}" if e.description else ""), *sizes)
    print_table(console, wide, narrow)


def print_dataset(entry: DatasetEntry, console: Console) -> None:
    """One dataset's schema: what a task may name, exactly as the partners declared it."""
    console.print(f"[bold]{entry.name}[/]" + (f": {escape(entry.description)}"
                                               if entry.description else ""))
    named = f" ({escape(', '.join(entry.holders))})" if entry.holders else ""
    console.print(f"held by {entry.partners} partner(s){named}; about {entry.rows:,} rows in all "
                  f"(rounded to the nearest {ROW_ROUNDING})")
    table = Table(title="features")
    table.add_column("column", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("values")  # ranges and categories: wrap between them
    for f in entry.features:
        if isinstance(f, NumericFeature):
            values = f"{f.min:g} – {f.max:g}, missing → {f.fill:g}"
        elif isinstance(f, CategoricalFeature):
            values = ", ".join(escape(str(c)) for c in f.categories)
        else:
            values = "free text"
        table.add_row(escape(f.name), f.kind, values)
    print_table(console, table)
    console.print(f"target: {escape(entry.target.name)}, classes: "
                  + ", ".join(escape(str(c)) for c in entry.target.classes))


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
