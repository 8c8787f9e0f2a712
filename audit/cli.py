"""`sangsaeng audit ...`: the auditor's commands, through the coordinator's audit API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sangsaeng.shared.cli import (
    REFUSED,
    CaOption,
    TokenOption,
    UrlOption,
    api_session,
    failing_on,
)
from sangsaeng.shared.http import DEFAULT_API_URL
from sangsaeng.shared.signing import SigningKeyError, parse_public_key

from .fetch import AuditApi, AuditData, fetch
from .report import AuditReport, write_report
from .verify import BadLedgerFile, Verification, load_ledger, verify
from .views import print_verification

INCOMPLETE = 3  # exit code: nothing failed, but not everything could be cross-checked

app = typer.Typer(help="Auditors: recompute ε independently, cross-check partners' signed "
                       "ledgers, write the report.", no_args_is_help=True)
console = Console()

LedgerOption = Annotated[list[Path] | None, typer.Option(
    "--ledger", help="A partner's signed ledger export (`sangsaeng client ledger export`); "
                     "repeat for each partner dataset.")]
KeyOption = Annotated[list[str] | None, typer.Option(
    "--partner-key", metavar="NAME=KEY", help="Pin a partner's public key known out of band; "
                                              "the coordinator's must be the same.")]
AnchorOption = Annotated[str | None, typer.Option(
    "--log-anchor", metavar="SEQ:HASH", help="An audit log entry seen in an earlier audit; "
                                             "it must still be in the log.")]


def _verification(api_url: str, token: Path | None, ca_file: Path | None,
                  ledgers: list[Path] | None, partner_keys: list[str] | None, log_anchor: str | None
                  ) -> tuple[AuditData, Verification]:
    """Parse every option first (a bad one changes nothing and asks nothing of the API)."""
    with failing_on(BadLedgerFile, SigningKeyError, ValueError):
        loaded = [load_ledger(path) for path in ledgers or []]
        pinned = dict(_name_and_key(text) for text in partner_keys or [])
        anchor = _anchor(log_anchor) if log_anchor else None
    with api_session(AuditApi, api_url, token, ca_file) as api:
        data = fetch(api)
    with console.status("recomputing ε with dp_accounting..."):
        return data, verify(data, loaded, pinned, anchor)


def _name_and_key(text: str) -> tuple[str, str]:
    name, _, key = text.partition("=")
    if not name or not key:
        raise ValueError("--partner-key takes NAME=KEY")
    parse_public_key(key)
    return name, key


def _anchor(text: str) -> tuple[int, str]:
    seq, _, hash_ = text.partition(":")
    if not seq.isdigit() or len(hash_) != 64:
        raise ValueError("--log-anchor takes SEQ:HASH (64 hex digits)")
    return int(seq), hash_


@app.command("verify")
def verify_command(api_url: UrlOption = DEFAULT_API_URL, token: TokenOption = None,
                   ca_file: CaOption = None,
                   ledger: LedgerOption = None, partner_key: KeyOption = None,
                   log_anchor: AnchorOption = None) -> None:
    """Recompute every reported ε with a second accountant, cross-check partners' signed
    ledgers against the coordinator's records, and check the audit log's chain. Exit 1 on
    any problem, each named; 3 if something could not be cross-checked (a ledger export
    missing)."""
    _, result = _verification(api_url, token, ca_file, ledger, partner_key, log_anchor)
    print_verification(result, console)
    _exit_for(result)


@app.command("report")
def report_command(api_url: UrlOption = DEFAULT_API_URL, token: TokenOption = None,
                   ca_file: CaOption = None,
                   output: Annotated[Path, typer.Option(
                       "-o", "--output", help="The HTML file; the JSON goes beside it.")
                   ] = Path("audit-report.html"),
                   ledger: LedgerOption = None, partner_key: KeyOption = None,
                   log_anchor: AnchorOption = None) -> None:
    """Verify, then write the audit as a self-contained HTML report and as JSON. Exit 1 if
    the verification failed, 3 if it is incomplete (the report is written either way)."""
    data, result = _verification(api_url, token, ca_file, ledger, partner_key, log_anchor)
    report = AuditReport(data=data, verification=result)
    write_report(report, output)
    print_verification(result, console)
    console.print(f"report: {output} and {output.with_suffix('.json')}")
    _exit_for(result)


def _exit_for(result: Verification) -> None:
    if result.verdict != "passed":
        raise typer.Exit(REFUSED if result.verdict == "failed" else INCOMPLETE)
