"""`sangsaeng client ...`: the partner's own view of its budget and ledger."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .budget import LedgerBroken, dataset_budget
from .ledger import Ledger, LedgerMissing
from .policy import PartnerPolicy, PolicyError, TaskRefused

app = typer.Typer(help="Partner side: privacy budget and ledger.", no_args_is_help=True)
ledger_app = typer.Typer(help="The append-only, hash-chained privacy ledger.",
                         no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
console = Console()

PolicyOption = Annotated[Path, typer.Option("--policy", help="The partner's policy file.")]
DatasetOption = Annotated[str | None, typer.Option(help="One dataset (default: all).")]


def _load(policy_path: Path, dataset: str | None) -> tuple[PartnerPolicy, list[str]]:
    try:
        policy = PartnerPolicy.load(policy_path)
        names = [dataset] if dataset else list(policy.datasets)
        for name in names:
            policy.dataset(name)
    except (PolicyError, TaskRefused) as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(2) from None
    return policy, names


@app.command()
def budget(policy_path: PolicyOption, dataset: DatasetOption = None) -> None:
    """Per dataset: cap, lifetime epsilon spent, remaining, and the runs that spent it."""
    policy, names = _load(policy_path, dataset)
    for name in names:
        try:
            b = dataset_budget(policy, name)
        except LedgerMissing as err:
            console.print(f"{policy.partner} / {name}: {err}")
            continue
        except LedgerBroken as err:
            console.print(f"[red]{policy.partner} / {name}: {err}; no budget can be read "
                          "from it[/]")
            raise typer.Exit(1) from None
        table = Table(title=f"{b.partner} / {b.dataset}: spent ε {b.spent:.3f} of cap "
                            f"{b.cap:g} (δ={b.delta:g}), remaining {b.remaining:.3f}",
                      caption="ε per run is that run alone; runs compose by the accountant, "
                              "so they do not add up to the lifetime ε")
        for col in ["run", "rounds reserved", "committed", "ε of the run"]:
            table.add_column(col, justify="right")
        for r in b.runs:
            table.add_row(r.run_id, str(r.rounds), str(r.committed), f"{r.epsilon:.3f}")
        console.print(table)


@ledger_app.command()
def verify(
    policy_path: PolicyOption, dataset: DatasetOption = None,
    expect: Annotated[str | None, typer.Option(
        help="SEQ:HASH of a head recorded elsewhere (the coordinator's privacy records); "
             "checks it is still in the chain. Needs --dataset.")] = None,
) -> None:
    """Walk each ledger's hash chain; report the first broken entry (exit 1 if any)."""
    policy, names = _load(policy_path, dataset)
    anchor = None
    if expect is not None:
        seq, _, hash_ = expect.partition(":")
        if not (dataset and seq.isdigit() and len(hash_) == 64):
            console.print("[red]--expect takes SEQ:HASH (64 hex digits), with --dataset[/]")
            raise typer.Exit(2)
        anchor = (int(seq), hash_)
    broken = False
    for name in names:
        try:
            with Ledger(policy.ledger_path(name), create=False) as ledger:
                result = ledger.verify(expect=anchor)
        except LedgerMissing as err:
            console.print(f"{name}: {err}")
            continue
        if result.ok:
            console.print(f"{name}: ok ({result.entries} entries, hash chain intact)")
        else:
            broken = True
            console.print(f"[red]{name}: BROKEN at entry {result.first_broken_seq}: "
                          f"{result.problem}[/]")
    if broken:
        raise typer.Exit(1)


@ledger_app.command()
def export(policy_path: PolicyOption, dataset: Annotated[str, typer.Option()],
           output: Annotated[Path | None, typer.Option("-o", "--output",
                                                       help="File (default: stdout).")] = None
           ) -> None:
    """Every ledger entry as JSON lines, in order, for auditors."""
    policy, _ = _load(policy_path, dataset)
    try:
        with Ledger(policy.ledger_path(dataset), create=False) as ledger:
            lines = "".join(entry.model_dump_json() + "\n" for entry in ledger.entries())
    except LedgerMissing as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(1) from None
    if output is None:
        sys.stdout.write(lines)
    else:
        output.write_text(lines)
