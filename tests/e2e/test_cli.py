"""The README's demo command, as a user runs it (smaller task to keep CI short)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from sangsaeng.audit.report import AuditReport
from sangsaeng.demo.data import default_task_path
from sangsaeng.demo.run import PARTNERS
from sangsaeng.server.db import Store
from sangsaeng.server.runs.states import COMPLETED, STOPPED

from ..support.browser import chromium, open_html
from ..support.processes import flower_processes

SANGSAENG = str(Path(sys.executable).parent / "sangsaeng")


def short_task(tmp_path: Path, **changes: object) -> Path:
    text = default_task_path().read_text()
    for key, value in changes.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    path = tmp_path / "task.toml"
    path.write_text(text)
    assert all(tomllib.loads(text)[k] == v for k, v in changes.items())
    return path


def demo(workdir: Path, task: Path) -> str:
    result = subprocess.run([SANGSAENG, "demo", "--workdir", str(workdir), "--task", str(task)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def budget_rows(out: str) -> dict[str, list[str]]:
    """partner -> [ε this run, ε lifetime, cap, remaining, runs] from the demo's table."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()
            if line.startswith("│")]
    return {r[0]: r[1:] for r in rows if len(r) == 6 and r[0] in PARTNERS}


def test_demo_runs_twice_and_continues_the_spending(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    out = demo(workdir, short_task(tmp_path, rounds=2, local_epochs=1))
    assert "round 1/2" in out and "round 2/2" in out
    assert re.search(r"Federated DP model's AUC 0\.\d{3} vs centralized non-private AUC "
                     r"0\.\d{3}", out)
    assert "completed" in out and (workdir / "model-run1.safetensors").is_file()
    first = budget_rows(out)
    assert sorted(first) == ["daehan-insurance", "hanbit-bank", "minjung-mutual"]
    assert all(row[0] == row[1] and row[4] == "1" for row in first.values())

    out = demo(workdir, short_task(tmp_path, rounds=1, local_epochs=1))
    second = budget_rows(out)
    for partner, row in second.items():  # the second run continues from the first's spending
        assert float(row[1]) > float(first[partner][1]) and row[4] == "2"
        assert float(row[3]) == pytest.approx(float(row[2]) - float(row[1]), abs=0.011)
    run = Store(f"sqlite:///{workdir / 'sangsaeng.db'}").runs.get(2)
    assert run.status == COMPLETED and len(run.rounds) == 1
    assert flower_processes() == []

    policy = workdir / "partners" / "hanbit-bank.policy.toml"
    shown = subprocess.run([SANGSAENG, "client", "budget", "--policy", str(policy)],
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    spent = re.search(r"spent ε (\d+\.\d{3}) of cap 10 ", shown.stdout)
    # the same ε printed to 3 decimals and to 2 (0.97516: 0.975 and 0.98): up to 0.0055 apart
    assert spent and float(spent.group(1)) == pytest.approx(float(second["hanbit-bank"][1]),
                                                            abs=0.0055)
    verified = subprocess.run([SANGSAENG, "client", "ledger", "verify", "--policy", str(policy)],
                              capture_output=True, text=True)
    assert verified.returncode == 0 and "caravan: ok (9 entries" in verified.stdout
    check_demo_audit(workdir, out)


def check_demo_audit(workdir: Path, out: str) -> None:
    """After two demo runs the auditor's verification passes, the accountants agree within
    the stated tolerance, and the report renders with its plots and tables."""
    assert "verification passed" in out and "FAIL" not in out
    report = AuditReport.model_validate_json((workdir / "audit-report.json").read_text())
    v = report.verification
    assert v.ok and v.failures == [] and v.audit_log.ok
    assert sorted(a.partner for a in v.accountants) == sorted(PARTNERS)
    for a in v.accountants:  # every claimed ε, recomputed by Opacus' PRV from the ledger
        assert a.ok and a.history == "partner ledger"
        assert a.recomputed_lower is not None and a.recomputed_upper is not None
        assert a.recomputed_lower <= a.claimed <= a.recomputed_upper
        assert a.max_difference <= max(0.01, 0.01 * a.claimed)
        assert a.claimed < a.rdp  # the looser bound, for reference
    for lr in v.ledgers:
        assert lr.ok and lr.signature == "ok" and lr.chain == "ok"
        assert lr.matched == lr.records == 3  # 2 rounds, then 1, each aggregated
    runs_with_records = [r for r in report.data.runs if r.records]
    assert len(runs_with_records) == 2
    with chromium() as browser, open_html(browser, workdir / "audit-report.html") as opened:
        page = opened.page
        assert page.title() == "Sangsaeng privacy audit"
        assert page.locator("#budgets svg.budget-bar").count() == len(PARTNERS)
        for run in runs_with_records:
            plot = page.locator(f"svg.epsilon-plot[data-run='{run.id}']")
            partners = {r.partner for r in run.records}
            assert plot.locator("polyline.series").count() == len(partners)
            box = plot.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 150
        for table, rows in (("accountants", len(PARTNERS)), ("ledgers", len(PARTNERS))):
            assert page.locator(f"#verification table.{table} tbody tr").count() == rows
        records = sum(len(r.records) for r in runs_with_records)
        assert page.locator("#parameters table.parameters tbody tr").count() == records
        assert opened.outside_requests == [] and opened.console_errors == []


def test_demo_ctrl_c_stops_everything(tmp_path: Path) -> None:
    task = short_task(tmp_path, rounds=20)
    workdir = tmp_path / "demo"
    proc = subprocess.Popen([SANGSAENG, "demo", "--workdir", str(workdir), "--task", str(task)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # wait until the deployment is up and training began
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if "round 1/20" in seen[-1]:
            break
    assert seen and "round 1/20" in seen[-1], "".join(seen)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    time.sleep(0.5)  # let the reader thread drain the pipe
    while not lines.empty():
        seen.append(lines.get())
    assert "Interrupted" in "".join(seen)
    assert flower_processes() == []
    run = Store(f"sqlite:///{workdir / 'sangsaeng.db'}").runs.get(1)
    # on failure, what ended the run and the SuperLink's (and ServerApp's) last words
    superlink_log = (workdir / "logs" / "superlink.log").read_text()[-6000:]
    assert (run.status, run.reason) == (STOPPED, "stopped before it completed"), superlink_log


def test_task_check(tmp_path: Path) -> None:
    ok = subprocess.run([SANGSAENG, "task", "check", str(default_task_path())],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "85 features" in ok.stdout
    bad = short_task(tmp_path, rounds=0)
    result = subprocess.run([SANGSAENG, "task", "check", str(bad)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "rounds: Input should be greater than or equal to 1" in (
        result.stdout.replace("\n", ""))
