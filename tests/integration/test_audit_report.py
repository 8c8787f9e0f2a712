"""The auditor's HTML report: rendered from realistic audit data, opened in headless
Chromium, checked for what a reader sees (verdict, bars, plots, tables), that it loads
nothing from outside, and that text from the data cannot inject markup."""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from sangsaeng.audit.report import AuditReport, render_html
from sangsaeng.audit.verify import (
    AccountantResult,
    AuditData,
    Finding,
    LedgerResult,
    LogResult,
    Verification,
)
from sangsaeng.shared.hash_chain import GENESIS, canonical_sha256
from sangsaeng.shared.rest.audit import (
    AuditLogEntry,
    AuditRecord,
    AuditRun,
    DatasetSpend,
    PartnerKey,
)

from ..support.browser import Opened, chromium, open_html

EVIL = 'evil<script>window.pwned = 1</script>"'  # a partner name that tries to inject
T0 = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)
SECTIONS = ("budgets", "epsilon-plots", "verification", "parameters", "partners")
# partner: (cap, steps per round, ε scale: lifetime ε = scale * sqrt(steps so far))
PARTNERS = {"alpha-bank": (10.0, 150, 0.253), "beta-insure": (6.0, 80, 0.123),
            "gamma-card": (10.0, 100, 0.2)}


def sample_report(failing: bool = False, incomplete: bool = False) -> AuditReport:
    """Two runs with records (4 and 5 rounds), one that failed before any round; in the
    failing variant the third partner's name tries to inject a script."""
    partners = dict(PARTNERS)
    if failing:
        partners[EVIL] = partners.pop("gamma-card")
    names = list(partners)
    steps_so_far = dict.fromkeys(names, 0)
    runs = []
    for run_id, (rounds, members) in enumerate([(4, names), (5, names[:2]), (0, names)], 1):
        records = []
        for rnd in range(1, rounds + 1):
            for p in members:
                cap, steps, scale = partners[p]
                steps_so_far[p] += steps
                n = steps_so_far[p] // steps
                records.append(AuditRecord(
                    round=rnd, partner=p, node_id=f"node-{names.index(p)}", dataset="caravan",
                    noise_multiplier=1.0 + 0.1 * names.index(p), sample_rate=0.02,
                    steps=steps, evaluation_noise_multiplier=1e6, trained_parameters=134,
                    delta=1e-5,
                    epsilon=scale * math.sqrt(rnd * steps),
                    lifetime_epsilon=scale * math.sqrt(steps_so_far[p]), epsilon_cap=cap,
                    ledger_seq=2 * n, ledger_hash=f"{n:064x}",
                    recorded_at=T0 + dt.timedelta(hours=run_id, minutes=rnd)))
        runs.append(AuditRun(
            id=run_id, flower_run_id=f"{1000 + run_id}", owner="startup-a", dataset="caravan",
            task_sha256="ab" * 32, status="failed" if not rounds else "finished",
            reason="no partner node connected" if not rounds else None,
            started_at=T0 + dt.timedelta(hours=run_id),
            finished_at=T0 + dt.timedelta(hours=run_id, minutes=30), records=records))
    budgets = []
    for p in names:
        mine = [r for run in runs for r in run.records if r.partner == p]
        budgets.append(DatasetSpend(
            partner=p, dataset="caravan", delta=1e-5, epsilon_cap=mine[-1].epsilon_cap,
            reported_epsilon=mine[-1].lifetime_epsilon, recorded_epsilon=mine[-1].lifetime_epsilon,
            runs=len({run.id for run in runs if any(r.partner == p for r in run.records)}),
            rounds=len(mine), ledger_seq=mine[-1].ledger_seq, ledger_hash=mine[-1].ledger_hash))
    log, prev = [], GENESIS
    for seq, action in enumerate(["partner.add", "partner.add", "run.start", "run.start"], 1):
        fields = dict(seq=seq, time=(T0 + dt.timedelta(hours=seq)).isoformat(), actor="admin",
                      role="admin", tenant=None, action=action, outcome="ok", detail=None,
                      prev_hash=prev)
        prev = canonical_sha256(fields)
        log.append(AuditLogEntry.model_validate({**fields, "hash": prev}))
    data = AuditData(
        api_url="https://coordinator.example:8443", fetched_at=T0.isoformat(), runs=runs,
        budgets=budgets, log=log, partners=[
            PartnerKey(name=p, public_key=f"{i}" * 43 + "=", registered_at=T0) for i, p in
            enumerate(names)])
    accountants = [AccountantResult(
        partner=b.partner, dataset=b.dataset, delta=b.delta, epsilon_cap=b.epsilon_cap,
        history="partner ledger" if i < 2 else "coordinator records", reports=b.rounds,
        claimed=b.reported_epsilon, recomputed=b.reported_epsilon + (0.4 if i == 2 else -2e-5),
        recomputed_lower=b.reported_epsilon - 0.01, recomputed_upper=b.reported_epsilon + 0.01,
        difference=-0.4 if i == 2 else 2e-5,
        tolerance=max(1e-2, 1e-2 * b.reported_epsilon), max_difference=3e-5,
        rdp=1.12 * b.reported_epsilon, ok=not (failing and i == 1))
        for i, b in enumerate(budgets)]
    ledgers = [LedgerResult(
        partner=b.partner, dataset=b.dataset, source=f"{b.partner}.ledger.json" if i < 2 else None,
        signature="invalid" if failing and i == 0 else "ok" if i < 2 else "not given",
        chain="ok" if i < 2 else "not given", entries=2 * b.rounds if i < 2 else 0,
        records=b.rounds, matched=b.rounds if i < 2 else 0,
        ledger_epsilon=b.reported_epsilon if i < 2 else None,
        coordinator_epsilon=b.reported_epsilon, ok=(not (failing and i == 0)) if i < 2 else None)
        for i, b in enumerate(budgets)]
    failures = [
        Finding(check="signature", subject=f"{names[0]} / caravan", message=(
            f"{names[0]}.ledger.json: the signature does not verify under the partner's "
            "registered key")),
        Finding(check="accountant", subject=f"{names[1]} / caravan", message=(
            "run 2 round 3: claimed lifetime ε 2.9000, recomputed 3.0131 "
            "<script>document.title = 'pwned'</script><img src=x onerror=alert(1)>")),
    ] if failing else []
    warnings = [f"{names[0]} / caravan: the ledger commits updates the coordinator has no "
                "record of: entry 9 (Flower run 77 round 5)"]
    missing = [f"{names[2]} / caravan: not cross-checked (no ledger export given)"]
    verification = Verification(
        verified_at=(T0 + dt.timedelta(days=1)).isoformat(), accountants=accountants,
        ledgers=ledgers, audit_log=LogResult(entries=len(log), head_seq=log[-1].seq,
                                             head_hash=log[-1].hash, ok=True),
        failures=failures, incomplete=missing if incomplete else [], warnings=warnings)
    return AuditReport(data=data, verification=verification)


# --- without a browser --------------------------------------------------------------------

def test_html_escapes_data_and_has_every_section() -> None:
    report = sample_report(failing=True)
    page = render_html(report)
    for section in SECTIONS:
        assert f'id="{section}"' in page
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", page))
    assert not tags & {"script", "img", "link", "iframe", "object", "embed", "base"}
    assert html.escape(EVIL) in page
    assert html.escape(report.verification.failures[1].message) in page
    assert "FAILED" in page and "2 problems" in page
    assert "PASSED" in render_html(sample_report())
    page = render_html(sample_report(incomplete=True))
    assert "INCOMPLETE" in page and "1 thing not cross-checked" in page
    assert "Not cross-checked (1)" in page and "no ledger export given" in page


# --- in Chromium ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module", params=[False, True], ids=["passing", "failing"])
def opened(request: pytest.FixtureRequest, browser: Browser,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuditReport, Opened]]:
    report = sample_report(failing=request.param)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    with open_html(browser, path) as page:
        yield report, page


def test_title_and_verdict(opened: tuple[AuditReport, Opened]) -> None:
    report, o = opened
    assert o.page.title() == "Sangsaeng privacy audit"
    verdict = o.page.locator(".verdict").inner_text()
    if report.verification.ok:
        assert verdict.startswith("PASSED")
    else:
        assert verdict.startswith("FAILED") and "2 problems" in verdict


def test_one_bar_per_dataset_drawn_to_scale(opened: tuple[AuditReport, Opened]) -> None:
    report, o = opened
    bars = o.page.locator("svg.budget-bar").evaluate_all("""bars => bars.map(b => ({
        partner: b.dataset.partner, dataset: b.dataset.dataset,
        spent: +b.dataset.spent, cap: +b.dataset.cap,
        track: b.querySelector('rect.track').getBoundingClientRect().width,
        bar: b.querySelector('rect.spent').getBoundingClientRect().width}))""")
    expected = {(b.partner, b.dataset): b for b in report.data.budgets}
    assert {(b["partner"], b["dataset"]) for b in bars} == set(expected)
    assert len(bars) == len(expected)
    v = report.verification
    for bar in bars:
        spend = expected[(bar["partner"], bar["dataset"])]
        # the largest figure the audit saw: reported, recomputed, in the ledger
        [recomputed] = [a.recomputed or 0.0 for a in v.accountants
                        if (a.partner, a.dataset) == (spend.partner, spend.dataset)]
        [in_ledger] = [lr.ledger_epsilon or 0.0 for lr in v.ledgers
                       if (lr.partner, lr.dataset) == (spend.partner, spend.dataset)]
        shown = max(spend.reported_epsilon, recomputed, in_ledger)
        assert (bar["spent"], bar["cap"]) == (shown, spend.epsilon_cap)
        assert bar["track"] > 100
        assert bar["bar"] / bar["track"] == pytest.approx(min(1.0, shown / spend.epsilon_cap),
                                                          abs=0.01)


def test_one_plot_per_run_with_a_line_per_partner(opened: tuple[AuditReport, Opened]) -> None:
    report, o = opened
    plots = o.page.locator("svg.epsilon-plot").evaluate_all("""plots => plots.map(s => ({
        run: +s.dataset.run,
        series: [...s.querySelectorAll('polyline.series')].map(p => {
            const box = p.getBoundingClientRect();
            return {partner: p.dataset.partner, width: box.width, height: box.height,
                    ys: [...p.points].map(pt => pt.y)};
        })}))""")
    with_records = [run for run in report.data.runs if run.records]
    assert [p["run"] for p in plots] == [run.id for run in with_records]
    for plot, run in zip(plots, with_records, strict=True):
        rounds: dict[str, int] = {}
        for r in run.records:
            rounds[r.partner] = rounds.get(r.partner, 0) + 1
        assert {s["partner"]: len(s["ys"]) for s in plot["series"]} == rounds
        for s in plot["series"]:
            assert s["width"] > 0 and s["height"] > 0
            assert s["ys"] == sorted(s["ys"], reverse=True)  # ε grows: the line rises


def test_tables_have_a_row_per_item(opened: tuple[AuditReport, Opened]) -> None:
    report, o = opened
    v, page = report.verification, o.page
    assert page.locator("table.accountants tbody tr").count() == len(v.accountants)
    assert page.locator("table.ledgers tbody tr").count() == len(v.ledgers)
    assert page.locator("table.failures tbody tr").count() == len(v.failures)
    if v.ok:
        assert "No problems found" in page.locator("#verification").inner_text()
    runs = [run for run in report.data.runs if run.records]
    tables = page.locator("table.parameters")
    assert tables.count() == len(runs)
    for i, run in enumerate(runs):
        assert tables.nth(i).locator("tbody tr").count() == len(run.records)
    assert page.locator("table.partners tbody tr").count() == len(report.data.partners)


def test_self_contained_and_nothing_injected(opened: tuple[AuditReport, Opened]) -> None:
    report, o = opened
    assert o.outside_requests == []
    assert o.console_errors == []
    assert o.page.locator("script, img, iframe").count() == 0
    assert o.page.evaluate("typeof window.pwned") == "undefined"
    names = o.page.locator("svg.budget-bar").evaluate_all(
        "bars => bars.map(b => b.dataset.partner)")
    assert names == [b.partner for b in report.data.budgets]
    if not report.verification.ok:
        assert EVIL in names
        message = report.verification.failures[1].message
        assert message in o.page.locator("table.failures").inner_text()


def test_outside_requests_are_blocked_and_recorded(browser: Browser, tmp_path: Path) -> None:
    """The helper itself: a page that does reach out is caught."""
    path = tmp_path / "leaky.html"
    path.write_text('<!DOCTYPE html><title>x</title><img src="http://192.0.2.1/x.png">')
    with open_html(browser, path) as o:
        assert o.outside_requests == ["http://192.0.2.1/x.png"]
