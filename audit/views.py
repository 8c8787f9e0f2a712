"""How a verification looks in the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sangsaeng.shared.tables import numbers, print_table

from .verify import Verification


def _eps(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def print_verification(result: Verification, console: Console) -> None:
    accountants = Table(title="ε recomputed: Opacus PRV (tight, certified bounds) and RDP",
                        caption=f"passes if {result.tolerance}")
    for col in ["partner / dataset", "history"]:
        accountants.add_column(col, no_wrap=True)
    numbers(accountants, ["reports", "claimed ε", "PRV ε", "PRV bounds", "max |claimed − PRV|",
                          "RDP ε", ""])
    for a in result.accountants:
        accountants.add_row(escape(f"{a.partner} / {a.dataset}"), a.history, str(a.reports),
                            f"{a.claimed:.4f}", _eps(a.recomputed),
                            f"{_eps(a.recomputed_lower)}–{_eps(a.recomputed_upper)}",
                            f"{a.max_difference:.1e}", f"{a.rdp:.4f}", _mark(a.ok))
    # Narrow terminals (an 80-column one fits 9 columns of figures only with short names):
    # a record per partner and dataset, "column: value" a line each.
    print_table(console, accountants)
    ledgers = Table(title="Partners' signed ledgers against the coordinator's records")
    for col in ["partner / dataset", "export", "signature"]:
        ledgers.add_column(col, no_wrap=True)
    ledgers.add_column("chain")  # "ok", or prose naming the first broken entry
    for col in ["records matched", "ledger ε", "coordinator ε", ""]:
        ledgers.add_column(col, no_wrap=True)
    for lr in result.ledgers:
        ledgers.add_row(escape(f"{lr.partner} / {lr.dataset}"), escape(lr.source or "-"),
                        lr.signature, escape(lr.chain), f"{lr.matched} of {lr.records}",
                        "-" if lr.ledger_epsilon is None else f"{lr.ledger_epsilon:.4f}",
                        f"{lr.coordinator_epsilon:.4f}", _mark(lr.ok))
    print_table(console, ledgers)
    log = result.audit_log
    console.print(f"audit log: {'ok' if log.ok else '[red]BROKEN[/]'} ({log.entries} entries"
                  + (f", head {log.head_seq}:{log.head_hash})" if log.head_seq else ")"))
    for warning in result.warnings:
        console.print(f"[yellow]warning: {escape(warning)}[/]")
    for missing in result.incomplete:
        console.print(f"[yellow]incomplete: {escape(missing)}[/]")
    for f in result.failures:
        console.print(f"[red]FAIL \\[{escape(f.check)}] {escape(f.subject)}: "
                      f"{escape(f.message)}[/]")
    console.print({
        "passed": "[bold green]verification passed[/]",
        "failed": f"[bold red]verification FAILED: {len(result.failures)} problem(s)[/]",
        "incomplete": f"[bold yellow]verification INCOMPLETE: {len(result.incomplete)} "
                      "thing(s) not cross-checked[/]"}[result.verdict])


def _mark(ok: bool | None) -> str:
    return {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]not checked[/]"}[ok]
