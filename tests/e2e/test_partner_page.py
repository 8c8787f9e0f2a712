"""`sangsaeng client dashboard` as a partner runs it: the real process on a free loopback
port, its pages in headless Chromium with JavaScript off, showing what `sangsaeng client
budget` prints for the same policy; the screenshot in docs/ is taken here."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sangsaeng.shared.accounting import Mechanism
from sangsaeng.shared.web import CONTENT_SECURITY_POLICY

from ..support.browser import chromium, open_url
from ..support.ledgers import PastRun, spent_policy

SANGSAENG = str(Path(sys.executable).parent / "sangsaeng")
SCREENSHOT = Path(__file__).parents[2] / "docs" / "screenshots" / "partner-budget.png"
STARTUP_SECONDS = 30
# Three startups' runs, as the demo's rounds reserve them; the last one's second round was
# reserved but never committed (a crash): it counts as spent all the same.
RUNS = [PastRun("1", 3, 3, Mechanism(noise_multiplier=1.1, sample_rate=0.05, steps=60)),
        PastRun("2", 2, 2, Mechanism(noise_multiplier=1.3, sample_rate=0.08, steps=40)),
        PastRun("3", 2, 1, Mechanism(noise_multiplier=1.1, sample_rate=0.05, steps=60))]


@contextmanager
def dashboard(policy: Path) -> Iterator[str]:
    """The dashboard process on a free port; its URL once it printed it (bounded wait);
    stopped by Ctrl-C at the end, killed if it does not stop."""
    proc = subprocess.Popen([SANGSAENG, "client", "dashboard", "--policy", str(policy),
                             "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        seen, url = [], None
        deadline = time.monotonic() + STARTUP_SECONDS
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
            found = re.search(r"(http://127\.0\.0\.1:\d+/) \(Ctrl-C stops it\)", seen[-1])
            url = found.group(1) if found else None
        assert url is not None, "the dashboard printed no URL: " + "".join(seen)
        yield url
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        time.sleep(0.2)  # the reader thread drains the pipe
        while not lines.empty():
            seen.append(lines.get())
        assert code == 130 and "Traceback" not in "".join(seen), "".join(seen)  # as Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def budget_output(policy: Path) -> str:
    shown = subprocess.run([SANGSAENG, "client", "budget", "--policy", str(policy)],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return shown.stdout


def test_the_partner_page_shows_what_client_budget_prints(tmp_path: Path) -> None:
    policy = spent_policy(tmp_path, RUNS, partner="hanbit-bank")
    printed = budget_output(policy)
    # the table's title, wrapped to the table's width
    title = re.search(r"spent ε (\d+\.\d{3}) of cap (\S+) \(δ=(\S+)\), remaining (\d+\.\d{3})",
                      " ".join(printed.split()))
    assert title is not None, printed
    spent, cap, delta, remaining = title.groups()
    printed_runs = [[cell.strip() for cell in line.split("│")[1:-1]]
                    for line in printed.splitlines() if re.match(r"│\s*\d", line)]
    assert len(printed_runs) == len(RUNS)

    entries = sum(run.rounds + run.committed for run in RUNS)  # reserves and commits

    with dashboard(policy) as url:
        # DNS rebinding: a page at another name that resolves here is refused
        assert httpx.get(url, headers={"Host": "rebind.example"}).status_code == 400
        assert httpx.post(url).status_code == 405
        with chromium() as browser, open_url(browser, url, height=800,
                                             javascript=False) as opened:
            page = opened.page
            assert opened.response is not None and opened.response.status == 200
            assert opened.response.headers["content-security-policy"] == \
                CONTENT_SECURITY_POLICY
            row = page.locator("table.datasets tr[data-dataset='caravan']")
            assert [row.locator(f"td.{name}").inner_text()
                    for name in ("spent", "cap", "delta", "remaining")] == \
                [spent, cap, delta, remaining]
            assert page.locator("svg.chart").count() == 1  # the bars, drawn without script
            assert "chain ok" in row.inner_text()

            row.get_by_role("link", name="caravan").click()  # a plain link: no script needed
            page.wait_for_url(url + "datasets/caravan")
            summary = page.locator("#budget p.summary")
            assert [summary.locator(f".{name}").inner_text()
                    for name in ("spent", "cap", "delta", "remaining")] == \
                [spent, cap, delta, remaining]
            shown_runs = [[cell.inner_text() for cell in tr.locator("td").all()]
                          for tr in page.locator("table.runs tbody tr").all()]
            assert shown_runs == printed_runs
            chain = page.locator("#verification p.chain")
            assert chain.get_attribute("data-ok") == "true"
            assert f"{entries} entries, hash chain intact" in chain.inner_text()
            assert page.locator("table.entries tbody tr").count() == entries
            last = page.locator("table.entries tbody tr").last.locator("td").last
            assert last.inner_text() == spent  # ε after the last entry: the lifetime ε
            plot = page.locator("#budget svg.chart")
            box = plot.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 150
            assert plot.locator("circle").count() == entries + 1  # from 0, then after every entry
            assert page.evaluate("getComputedStyle(document.body).fontFamily") != ""
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert opened.outside_requests == [] and opened.console_errors == []
