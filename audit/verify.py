"""`sangsaeng audit verify`: check, without trusting any one component, what each partner
dataset has spent.

1. Accountant: every ε a partner reported is recomputed with a second library
   (accountants/) from the mechanisms behind it — the partner's signed ledger where one
   is given, else the coordinator's records — and must match within the tolerance.
2. Ledgers: a partner's export must carry a valid signature under the key registered for
   it, an intact hash chain, a committed entry with the same run, round, task and mechanism
   for every update the coordinator recorded from it (each entry named by one record only),
   and at least the ε the coordinator believes spent.
   No lifetime ε — claimed, recomputed or in the ledger — may be over the partner's cap.
3. Audit log: its hash chain is intact (and still holds an entry seen earlier, if given).

Every problem becomes a Finding that names the record; the verification passes only
with none.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, computed_field

from sangsaeng.shared.accounting import Mechanism, round_mechanisms
from sangsaeng.shared.hash_chain import first_break
from sangsaeng.shared.ledger_format import (
    COMMIT,
    RESERVE,
    Entry,
    SignedLedgerExport,
    verify_chain,
)
from sangsaeng.shared.rest.audit import AuditLogEntry, AuditRecord, AuditRun, PartnerKey
from sangsaeng.shared.signing import signature_ok

from .accountants import Bounds, HistoryTooLarge, PrvAccountant, RdpAccountant
from .fetch import AuditData

PARAMETERS = {"noise_multiplier": "σ", "sample_rate": "q", "steps": "steps", "delta": "δ",
              "evaluation_noise_multiplier": "σ of the evaluation"}
# A claim is sound if it is at least PRV's certified lower bound (accountants/prv.py). It
# may be looser than the tight accountants, up to the RDP bound (older releases claimed RDP),
# with this margin: dp_accounting's fractional orders run up to 0.25 % high
# (accountants/rdp.py); 1 % leaves room for that and still names any claim that does not
# come from the recorded mechanisms.
RELATIVE_TOLERANCE = 1e-2
ABSOLUTE_TOLERANCE = 1e-2
TOLERANCE_TEXT = ("a claim is at least PRV's certified lower bound, and at most the RDP bound "
                  "+ 1% (at least 0.01)")


def tolerance(claimed: float) -> float:
    return max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * claimed)


Check = Literal["accountant", "signature", "chain", "cross-check", "budget", "audit log",
                "input"]


class Finding(BaseModel):
    check: Check
    subject: str  # "partner / dataset", or "audit log"
    message: str


class AccountantResult(BaseModel):
    partner: str
    dataset: str
    delta: float
    epsilon_cap: float
    history: Literal["partner ledger", "coordinator records"]  # where the mechanisms came from
    reports: int
    claimed: float  # lifetime ε in the latest report
    # Opacus' PRV estimate over the same history (tight, independent) and its certified
    # bounds: the true ε lies between. None: PRV could not grid it (said in `incomplete`).
    recomputed: float | None
    recomputed_lower: float | None
    recomputed_upper: float | None
    difference: float | None  # claimed - recomputed
    tolerance: float  # over the RDP bound a claim may be
    max_difference: float  # the largest |claimed - PRV| over every ε checked against PRV
    rdp: float  # dp_accounting RDP over the same history (looser; older releases claimed it)
    ok: bool


class LedgerResult(BaseModel):
    partner: str
    dataset: str
    source: str | None  # the export file; None: no export given
    signature: str  # ok | invalid | no registered key | not given
    chain: str  # ok | the first broken entry and why | not given
    entries: int
    records: int  # the coordinator's records of this partner dataset
    matched: int  # of which the ledger has with the same mechanism
    ledger_epsilon: float | None  # PRV estimate over every reserve in the ledger
    coordinator_epsilon: float  # PRV estimate over the mechanisms the coordinator recorded
    ok: bool | None  # None: not cross-checked


class LogResult(BaseModel):
    entries: int
    head_seq: int | None
    head_hash: str | None
    ok: bool


class Verification(BaseModel):
    verified_at: str
    tolerance: str = TOLERANCE_TEXT
    accountants: list[AccountantResult]
    ledgers: list[LedgerResult]
    audit_log: LogResult
    failures: list[Finding]
    # what could not be cross-checked: a partner dataset the coordinator has records of, or
    # a registered partner, without its signed ledger export
    incomplete: list[str] = Field(default_factory=list)
    warnings: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Literal["passed", "failed", "incomplete"]:
        return "failed" if self.failures else "incomplete" if self.incomplete else "passed"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.verdict == "passed"


@dataclass(frozen=True)
class LoadedLedger:
    source: str
    signed: SignedLedgerExport


class BadLedgerFile(ValueError):
    """A file given as a ledger export is not one."""


def load_ledger(path: Path) -> LoadedLedger:
    try:
        signed = SignedLedgerExport.model_validate_json(path.read_bytes())
    except OSError as err:
        raise BadLedgerFile(f"{path}: cannot read it ({err.strerror})") from None
    except ValidationError:
        raise BadLedgerFile(f"{path}: not a signed ledger export (make one with `sangsaeng "
                            "client ledger export`)") from None
    return LoadedLedger(path.name, signed)


@dataclass
class _Dataset:
    """One partner dataset: the coordinator's records of it, and its ledger if given."""

    partner: str
    dataset: str
    records: list[tuple[AuditRun, AuditRecord]]
    ledger: LoadedLedger | None = None
    entries: list[Entry] | None = None  # the ledger's, once signature and chain check out

    @property
    def subject(self) -> str:
        return f"{self.partner} / {self.dataset}"


def verify(data: AuditData, ledgers: Iterable[LoadedLedger],
           pinned_keys: dict[str, str] | None = None,
           log_anchor: tuple[int, str] | None = None) -> Verification:
    findings: list[Finding] = []
    incomplete: list[str] = []
    warnings: list[str] = []
    datasets = _datasets(data.runs, ledgers, findings)
    keys = _keys(data.partners, pinned_keys or {}, findings)
    ledger_results = [_check_ledger(d, keys, findings, incomplete, warnings)
                      for d in datasets.values()]
    # A partner may have spent budget the coordinator holds no record of: only its own
    # ledger tells. Every registered partner owes an export.
    seen = {d.partner for d in datasets.values() if d.ledger is not None or d.records}
    incomplete += [f"{p.name}: a registered partner, but no ledger export of it was given "
                   "(what it spent is not cross-checked)" for p in data.partners
                   if p.name not in seen]
    accountant_results = [_check_accountant(d, findings, incomplete) for d in datasets.values()
                          if d.records]
    log_result = _check_log(data.log, log_anchor, findings)
    return Verification(verified_at=dt.datetime.now(dt.UTC).isoformat(),
                        accountants=accountant_results, ledgers=ledger_results,
                        audit_log=log_result, failures=findings, incomplete=incomplete,
                        warnings=warnings)


def _datasets(runs: list[AuditRun], ledgers: Iterable[LoadedLedger],
              findings: list[Finding]) -> dict[tuple[str, str], _Dataset]:
    datasets: dict[tuple[str, str], _Dataset] = {}
    for run in runs:
        for r in run.records:
            key = (r.partner, r.dataset)
            datasets.setdefault(key, _Dataset(r.partner, r.dataset, [])).records.append((run, r))
    for loaded in ledgers:
        export = loaded.signed.export
        d = datasets.setdefault((export.partner, export.dataset),
                                _Dataset(export.partner, export.dataset, []))
        if d.ledger is not None:
            findings.append(Finding(check="input", subject=d.subject, message=(
                f"two ledger exports given ({d.ledger.source}, {loaded.source}); "
                "give one per partner dataset")))
        else:
            d.ledger = loaded
    for d in datasets.values():
        d.records.sort(key=lambda pair: pair[1].ledger_seq)
    return dict(sorted(datasets.items()))


def _keys(partners: list[PartnerKey], pinned: dict[str, str],
          findings: list[Finding]) -> dict[str, str]:
    """Registered keys; a key pinned by the auditor (known out of band) must be the one
    the coordinator serves."""
    keys = {p.name: p.public_key for p in partners}
    for name, key in pinned.items():
        if keys.get(name) != key:
            findings.append(Finding(check="signature", subject=name, message=(
                "the key the coordinator has registered for this partner is not the one "
                "pinned with --partner-key" if name in keys
                else "the coordinator has no key registered for this partner")))
        keys[name] = key  # the pinned key is what signatures are checked against
    return keys


# --- 2. ledgers -----------------------------------------------------------------------------

def _check_ledger(d: _Dataset, keys: dict[str, str], findings: list[Finding],
                  incomplete: list[str], warnings: list[str]) -> LedgerResult:
    believed = _coordinator_belief(d, warnings)
    result = LedgerResult(partner=d.partner, dataset=d.dataset, source=None,
                          signature="not given", chain="not given", entries=0,
                          records=len(d.records), matched=0, ledger_epsilon=None,
                          coordinator_epsilon=believed, ok=None)
    if d.ledger is None:
        incomplete.append(f"{d.subject}: not cross-checked (no ledger export given); its ε "
                          "was recomputed from the coordinator's records only")
        return result
    signed = d.ledger.signed
    result.source = d.ledger.source
    result.entries = len(signed.export.entries)
    fail = _Fail(d.subject, findings)
    key = keys.get(d.partner)
    if key is None:
        result.signature = "no registered key"
        fail("signature", f"{d.ledger.source}: the partner has no public key registered at "
                          "the coordinator (`sangsaeng admin partner add`)")
    elif not signature_ok(key, signed.export.signed_bytes(), signed.signature):
        result.signature = "invalid"
        fail("signature", f"{d.ledger.source}: the signature does not verify under the "
                          "partner's registered key (the export was altered after signing, or "
                          "signed with another key)")
    else:
        result.signature = "ok"
    head = signed.export.head
    chain = verify_chain(signed.export.entries, None if head is None else (head.seq, head.hash))
    if chain.ok:
        result.chain = "ok"
    else:
        result.chain = f"broken at entry {chain.first_broken_seq}: {chain.problem}"
        fail("chain", f"ledger entry {chain.first_broken_seq}: {chain.problem}")
    if result.signature != "ok" or not chain.ok:
        result.ok = False  # nothing in it can be relied on
        return result
    d.entries = [Entry.model_validate(row) for row in signed.export.entries]
    before = len(findings)
    named: dict[int, str] = {}  # ledger entry -> the record that names it
    for run, r in d.records:
        where = f"run {run.id} round {r.round}"
        if r.ledger_seq in named:
            fail("cross-check", f"{where} and {named[r.ledger_seq]} both name ledger entry "
                                f"{r.ledger_seq}: one update counted twice")
            continue
        named[r.ledger_seq] = where
        result.matched += _matches(d, run, r, d.entries, fail)
    unrecorded = [e for e in d.entries if e.kind == COMMIT and e.seq not in named]
    if unrecorded:  # sent but never recorded: a reply too late, or a run kept from auditors
        warnings.append(f"{d.subject}: the ledger commits updates the coordinator has no record "
                        "of: " + ", ".join(f"entry {e.seq} (Flower run {e.run_id} round "
                                           f"{e.round})" for e in unrecorded))
    # the δ the coordinator's figures are at (the partner's policy δ, as reported)
    delta = d.records[-1][1].delta if d.records else signed.export.delta
    reserves = [m for e in d.entries if e.kind == RESERVE for m in e.mechanisms()]
    result.ledger_epsilon = _epsilon(reserves, delta, f"{d.subject}: the ledger's", warnings)
    if result.ledger_epsilon < believed - tolerance(believed):
        fail("budget", f"the ledger accounts for ε {result.ledger_epsilon:.4f}, less than the "
                       f"{believed:.4f} the mechanisms in the coordinator's records spend")
    cap = signed.export.epsilon_cap
    if result.ledger_epsilon > cap + tolerance(cap):
        fail("budget", f"the ledger's lifetime ε {result.ledger_epsilon:.4f} is over the "
                       f"partner's cap {cap:g}")
    result.ok = len(findings) == before
    return result


def _matches(d: _Dataset, run: AuditRun, r: AuditRecord, entries: list[Entry],
             fail: _Fail) -> bool:
    """Whether the ledger has the committed entry the coordinator recorded for this
    update, with the same run, round and mechanism; each difference is a finding."""
    where = f"run {run.id} round {r.round}"
    commit = entries[r.ledger_seq - 1] if 0 < r.ledger_seq <= len(entries) else None
    if commit is None:
        fail("cross-check", f"{where}: the coordinator aggregated an update recorded as "
                            f"ledger entry {r.ledger_seq}, but the ledger ends at entry "
                            f"{len(entries)}")
        return False
    if commit.hash != r.ledger_hash:
        fail("cross-check", f"{where}: ledger entry {r.ledger_seq} is not the one the "
                            "coordinator recorded for this update (its hash differs: the "
                            "ledger was rewritten from there)")
        return False
    if commit.kind != COMMIT or commit.ref is None:
        fail("cross-check", f"{where}: ledger entry {r.ledger_seq} is a {commit.kind}, "
                            "not a commit")
        return False
    reserve = entries[commit.ref - 1]
    ok = True
    if reserve.task_sha256 != run.task_sha256:
        fail("cross-check", f"{where}: ledger entry {reserve.seq} trained task "
                            f"{reserve.task_sha256[:12]}, the coordinator recorded task "
                            f"{run.task_sha256[:12]} for the run")
        ok = False
    if (reserve.run_id, reserve.round) != (run.flower_run_id, r.round):
        fail("cross-check", f"{where}: ledger entry {reserve.seq} reserves Flower run "
                            f"{reserve.run_id} round {reserve.round}, the coordinator "
                            f"recorded Flower run {run.flower_run_id} round {r.round}")
        ok = False
    for name, symbol in PARAMETERS.items():
        recorded, in_ledger = getattr(r, name), getattr(reserve, name)
        if in_ledger is None or not math.isclose(recorded, in_ledger, rel_tol=1e-12):
            fail("cross-check", f"{where}: {symbol} is {recorded} in the coordinator's "
                                f"record but {in_ledger} in ledger entry {reserve.seq}")
            ok = False
    return ok


def _coordinator_belief(d: _Dataset, warnings: list[str]) -> float:
    """What the mechanisms the coordinator recorded for this dataset spend, by the same
    accountant as the ledger's (the partner's claims are checked on their own, below)."""
    if not d.records:
        return 0.0
    return _epsilon([m for _, r in d.records for m in _mechanisms(r)], d.records[-1][1].delta,
                    f"{d.subject}: the coordinator's records'", warnings)


def _epsilon(history: list[Mechanism], delta: float, whose: str, warnings: list[str]) -> float:
    """PRV's estimate; RDP's bound, said in a warning, where PRV cannot grid the history."""
    try:
        return PrvAccountant.of(history).epsilon(delta)
    except (HistoryTooLarge, ValueError, RuntimeError) as err:
        warnings.append(f"{whose} ε is RDP's bound: the PRV accountant could not recompute it "
                        f"({err})")
        return RdpAccountant.of(history).epsilon(delta)


# --- 1. accountant --------------------------------------------------------------------------

def _check_accountant(d: _Dataset, findings: list[Finding],
                      incomplete: list[str]) -> AccountantResult:
    """Check every reported ε (lifetime up to the report's ledger entry; the run's up to
    the same point) against the same history, one pass in ledger order: none may be above
    the RDP bound. The tight PRV check, whose cost grows with the history, is made where a
    claim is final: each run's ε at its last report, and the lifetime ε at the latest."""
    source: Literal["partner ledger", "coordinator records"]
    if d.entries is not None:
        source = "partner ledger"
        items = [(e.seq, e.run_id, m) for e in d.entries if e.kind == RESERVE
                 for m in e.mechanisms()]
    else:
        source = "coordinator records"
        items = [(r.ledger_seq, run.flower_run_id or "", m) for run, r in d.records
                 for m in _mechanisms(r)]
    items.sort(key=lambda item: item[0])
    lifetime, lifetime_rdp = PrvAccountant(), RdpAccountant()
    per_run: dict[str, tuple[PrvAccountant, RdpAccountant]] = {}
    last_report = {run.id: k for k, (run, _) in enumerate(d.records)}
    fail = _Fail(d.subject, findings)
    worst, i, final = 0.0, 0, None
    for k, (run, r) in enumerate(d.records):
        while i < len(items) and items[i][0] <= r.ledger_seq:
            _, run_key, mechanism = items[i]
            for accountant in (lifetime, lifetime_rdp,
                               *per_run.setdefault(run_key, (PrvAccountant(), RdpAccountant()))):
                accountant.compose(mechanism)
            i += 1
        this_run = per_run.get(run.flower_run_id or "", (PrvAccountant(), RdpAccountant()))
        latest = k == len(d.records) - 1
        for label, claimed, tight, rdp_of in (
                ("lifetime ε", r.lifetime_epsilon, lifetime if latest else None, lifetime_rdp),
                ("run ε", r.epsilon, this_run[0] if last_report[run.id] == k else None,
                 this_run[1])):
            loose = rdp_of.epsilon(r.delta)
            where = f"run {run.id} round {r.round}: claimed {label} {claimed:.4f}"
            if claimed > loose + tolerance(loose):
                fail("accountant", f"{where} is above even the RDP bound {loose:.4f} of its "
                                   "mechanisms: " + _over_why(source, d.ledger is not None))
            if tight is None:
                continue
            bounds = _bounds(tight, r.delta, f"{d.subject}: {where}", incomplete)
            if latest and label == "lifetime ε":
                final = bounds
            if bounds is None:
                continue
            worst = max(worst, abs(claimed - bounds.estimate))
            if claimed < bounds.lower:
                fail("accountant", f"{where} is below {bounds.lower:.4f}, the least its "
                                   "mechanisms spend (PRV's certified lower bound): the "
                                   "partner under-states what it spent")
    latest_record = d.records[-1][1]
    rdp = lifetime_rdp.epsilon(latest_record.delta)
    claimed = latest_record.lifetime_epsilon
    spent = max(claimed, final.estimate if final else rdp)
    cap = latest_record.epsilon_cap
    if spent > cap + tolerance(cap):
        fail("budget", f"lifetime ε {spent:.4f} (run {d.records[-1][0].id} round "
                       f"{latest_record.round}) is over the partner's cap {cap:g}")
    return AccountantResult(
        partner=d.partner, dataset=d.dataset, delta=latest_record.delta,
        epsilon_cap=latest_record.epsilon_cap, history=source, reports=len(d.records),
        claimed=claimed, recomputed=final.estimate if final else None,
        recomputed_lower=final.lower if final else None,
        recomputed_upper=final.upper if final else None,
        difference=claimed - final.estimate if final else None,
        tolerance=tolerance(rdp), max_difference=worst, rdp=rdp,
        ok=not any(f.check == "accountant" and f.subject == d.subject for f in findings))


def _bounds(accountant: PrvAccountant, delta: float, what: str,
            incomplete: list[str]) -> Bounds | None:
    """PRV's bounds, or None (and the claim left unchecked, said as such) where it cannot
    grid the history."""
    try:
        return accountant.bounds(delta)
    except (HistoryTooLarge, ValueError, RuntimeError) as err:
        incomplete.append(f"{what}: not checked against a tight lower bound (the PRV "
                          f"accountant could not recompute it: {err})")
        return None


def _over_why(source: str, ledger_given: bool) -> str:
    if source == "coordinator records" and not ledger_given:
        return ("is a round missing from the coordinator's records? (give the partner's "
                "ledger export)")
    return "the claim does not come from these mechanisms"


def _mechanisms(r: AuditRecord) -> list[Mechanism]:
    """A reported round's training and its evaluation release."""
    return round_mechanisms(r.noise_multiplier, r.sample_rate, r.steps,
                            r.evaluation_noise_multiplier)


# --- 3. audit log ---------------------------------------------------------------------------

def _check_log(entries: list[AuditLogEntry], anchor: tuple[int, str] | None,
               findings: list[Finding]) -> LogResult:
    fail = _Fail("audit log", findings)
    broken = first_break(e.model_dump() for e in entries)
    if broken is not None:
        fail("audit log", broken.problem if broken.kind == "missing"
             else f"entry {broken.seq}: {broken.problem}")
    anchored = anchor is None or any((e.seq, e.hash) == anchor for e in entries)
    if anchor is not None and not anchored:
        fail("audit log", f"entry {anchor[0]} as seen earlier (--log-anchor) is not in the "
                          "log (the log was cut or rewritten from there)")
    head = entries[-1] if entries else None
    return LogResult(entries=len(entries), head_seq=head.seq if head else None,
                     head_hash=head.hash if head else None, ok=broken is None and anchored)


class _Fail:
    def __init__(self, subject: str, findings: list[Finding]) -> None:
        self.subject, self.findings = subject, findings

    def __call__(self, check: Check, message: str) -> None:
        self.findings.append(Finding(check=check, subject=self.subject, message=message))
