"""`sangsaeng audit ...`: the auditor's commands, through the coordinator's audit API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
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

from .accountants import HistoryTooLarge, PrvAccountant
from .empirical import EmpiricalAudit
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
                   log_anchor: AnchorOption = None,
                   empirical: Annotated[list[Path] | None, typer.Option(
                       "--empirical", help="A result of `sangsaeng audit empirical` to show "
                                           "beside the recomputed ε; repeat for each.")] = None
                   ) -> None:
    """Verify, then write the audit as a self-contained HTML report and as JSON. Exit 1 if
    the verification failed or an empirical audit fails, 3 if it is incomplete (the report
    is written either way)."""
    with failing_on(BadEmpiricalFile):
        empirical_audits = [_load_empirical(path) for path in empirical or []]
    data, result = _verification(api_url, token, ca_file, ledger, partner_key, log_anchor)
    report = AuditReport(data=data, verification=result, empirical=empirical_audits)
    write_report(report, output)
    print_verification(result, console)
    for audit in empirical_audits:
        console.print(f"empirical audit of {audit.dataset} (task {audit.task_sha256[:12]}): "
                      + ", ".join(f"{a.threat_model} ε ≥ {a.epsilon_lower:.3f}"
                                  for a in audit.audits)
                      + f" against claimed {audit.claimed_epsilon:.3f}: "
                      + ("[bold red]fails[/]" if audit.verdict == "fails" else "consistent"))
    console.print(f"report: {output} and {output.with_suffix('.json')}")
    if any(a.verdict == "fails" for a in empirical_audits):
        raise typer.Exit(REFUSED)
    _exit_for(result)


class BadEmpiricalFile(ValueError):
    """A file given as an empirical audit's result is not one."""


def _load_empirical(path: Path) -> EmpiricalAudit:
    """A result, checked (its bounds and claimed ε recomputed from its own counts and
    mechanism), with ε recomputed by this auditor's PRV accountant, not the file's."""
    try:
        result = EmpiricalAudit.model_validate_json(path.read_bytes())
    except OSError:
        raise BadEmpiricalFile(f"{path}: cannot be read") from None
    except ValidationError as err:
        why = next((e["msg"].removeprefix("Value error, ") for e in err.errors()
                    if e["type"] == "value_error"), None)
        raise BadEmpiricalFile(f"{path}: " + (f"not what its own figures give ({why})" if why
                               else "not a result of `sangsaeng audit empirical`")) from None
    try:
        recomputed = PrvAccountant.of([result.mechanism]).epsilon(result.delta)
    except HistoryTooLarge:
        recomputed = None
    return result.model_copy(update={"recomputed_epsilon": recomputed})


def _exit_for(result: Verification) -> None:
    if result.verdict != "passed":
        raise typer.Exit(REFUSED if result.verdict == "failed" else INCOMPLETE)
