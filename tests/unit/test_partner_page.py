"""The partner's own page (`sangsaeng client dashboard`): the figures `client budget`
prints, ε after each ledger entry by the accountant, the chain's verification, names
escaped, and a server that answers only GETs for its loopback Host."""

from __future__ import annotations

import re
import socket
import sqlite3
from html import unescape
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from sangsaeng.client.budget import dataset_budget, dataset_ledger, epsilon_timeline
from sangsaeng.client.dashboard import create_app, render_dataset, render_index
from sangsaeng.client.policy import PartnerPolicy, TaskRefused
from sangsaeng.shared.accounting import Mechanism, epsilon
from sangsaeng.shared.web import SECURITY_HEADERS

from ..support.cli import sangsaeng
from ..support.ledgers import DELTA, PastRun, spent_policy

ROUND = Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)
SCRIPT = "<script>alert(1)</script>"
PORT = 8700
# `client budget`'s title, and the page's summary (a tag around each figure: spaces here)
SUMMARY = re.compile(r"spent ε (\d+\.\d{3}) of cap (\S+) \(δ= ?([^ )]+) ?\), remaining "
                     r"(\d+\.\d{3})")


def filled_policy(directory: Path, partner: str = "acme") -> Path:
    """Run 7 (two rounds, committed), run 9 (one round, reserved only) and a run whose id
    carries a script: seven ledger entries."""
    return spent_policy(directory, [PastRun("7", 2, 2, ROUND), PastRun("9", 1, 0, ROUND),
                                    PastRun(SCRIPT, 1, 1, ROUND)], partner=partner)


def text(html: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_page_shows_what_client_budget_prints(tmp_path: Path) -> None:
    path = filled_policy(tmp_path)
    policy = PartnerPolicy.load(path)
    shown = sangsaeng("client", "budget", "--policy", str(path))
    assert shown.returncode == 0, shown.stdout
    printed = SUMMARY.search(shown.stdout)
    page = text(render_dataset(policy, "caravan"))
    on_page = SUMMARY.search(page)
    assert printed and on_page and printed.groups() == on_page.groups()
    budget = dataset_budget(policy, "caravan")
    assert printed.group(1) == f"{budget.spent:.3f}" and printed.group(2) == "10"
    for run in budget.runs:  # each run's row: reserved, committed, its own ε
        row = f"{run.run_id} {run.rounds} {run.committed} {run.epsilon:.3f}"
        assert row in page and re.search(re.escape(run.run_id) + r"\s*│\s*"
                                         + r"\s*│\s*".join(row.split()[-3:]), shown.stdout)
    assert "ok 7 entries, hash chain intact" in page
    index = text(render_index(policy))
    assert f"caravan {budget.spent:.3f} 10 1e-05 {budget.remaining:.3f} 3 chain ok 7 entries" \
        in index


def test_epsilon_over_time_is_the_accountant_over_each_prefix(tmp_path: Path) -> None:
    policy = PartnerPolicy.load(filled_policy(tmp_path))
    read = dataset_ledger(policy, "caravan")
    assert read.budget is not None
    timeline = epsilon_timeline(read.entries, DELTA)
    assert [seq for seq, _ in timeline] == list(range(8))  # from (0, 0), then every entry
    history: list[Mechanism] = []
    for entry, (_, value) in zip(read.entries, timeline[1:], strict=True):
        history += entry.mechanisms() if entry.kind == "reserve" else []
        assert value == epsilon(history, DELTA)
    assert timeline[-1][1] == read.budget.spent  # the same figure the budget shows
    assert read.budget.spent < sum(r.epsilon for r in read.budget.runs)  # not added up
    page = render_dataset(policy, "caravan")
    assert page.count('<circle class="s0"') == len(timeline)
    assert 'class="cap"' in page  # the cap drawn on the chart


def test_a_long_ledger_is_accounted_at_spread_entries_and_the_last(tmp_path: Path) -> None:
    policy = PartnerPolicy.load(spent_policy(tmp_path, [PastRun("1", 9, 9, ROUND)]))
    read = dataset_ledger(policy, "caravan")
    assert read.budget is not None
    known: dict[tuple[str, float], float] = {}
    timeline = epsilon_timeline(read.entries, DELTA, max_points=3, known=known)
    # reserves are entries 1, 3, ..., 17: the 1st, 5th and 9th are accounted, each with the
    # commit after it
    assert [seq for seq, _ in timeline] == [0, 1, 2, 9, 10, 17, 18]
    assert timeline[-1][1] == read.budget.spent and len(known) == 3
    five = [m for e in read.entries[:9] if e.kind == "reserve" for m in e.mechanisms()]
    assert timeline[3][1] == epsilon(five, DELTA)  # after entry 9, the 5th reserve
    known[read.entries[-2].hash, DELTA] = -1.0  # remembered values are not recomputed
    assert epsilon_timeline(read.entries, DELTA, max_points=3, known=known)[-1][1] == -1.0
    page = text(render_dataset(policy, "caravan"))  # the default spread: every entry
    assert "on a ledger this long" not in page


def test_names_from_files_are_rendered_inert(tmp_path: Path) -> None:
    policy = PartnerPolicy.load(filled_policy(tmp_path, partner=SCRIPT))
    # a dataset name no loaded policy allows (the schema's name pattern), to test escaping
    rules = policy.datasets["caravan"]
    odd = policy.model_copy(update={"datasets": {SCRIPT.replace("/", ""): rules}})
    for html in (render_index(policy), render_dataset(policy, "caravan"), render_index(odd)):
        assert "<script" not in html.lower() and "&lt;script&gt;" in html
    assert f'href="/datasets/{"%3Cscript%3Ealert%281%29%3Cscript%3E"}"' in render_index(odd)


def test_a_missing_or_broken_ledger_is_shown_not_accounted(tmp_path: Path) -> None:
    path = filled_policy(tmp_path)
    policy = PartnerPolicy.load(path)
    db = sqlite3.connect(policy.ledger_path("caravan"), isolation_level=None)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET noise_multiplier = 3.0 WHERE seq = 3")
    db.close()
    page = text(render_dataset(policy, "caravan"))
    assert "BROKEN at entry 3: its content does not match its hash (edited)" in page
    assert "spent ε" not in page and "lifetime ε of caravan" not in page.lower()
    assert "BROKEN at entry 3" in text(render_index(policy))
    assert sangsaeng("client", "budget", "--policy", str(path)).returncode == 1

    policy.ledger_path("caravan").unlink()
    assert "no ledger at" in text(render_dataset(policy, "caravan"))
    assert "no ledger" in text(render_index(policy))
    with pytest.raises(TaskRefused):
        render_dataset(policy, "claims")


def test_only_gets_for_the_loopback_host_are_answered(tmp_path: Path) -> None:
    path = filled_policy(tmp_path)
    client = TestClient(create_app(path, PORT), base_url=f"http://127.0.0.1:{PORT}")
    for url, status in (("/", 200), ("/datasets/caravan", 200), ("/static/style.css", 200),
                        ("/datasets/claims", 404), ("/static/nope.css", 404), ("/nope", 404)):
        response = client.get(url)
        assert response.status_code == status
        assert {k: response.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    local = TestClient(create_app(path, PORT), base_url=f"http://localhost:{PORT}")
    assert local.get("/").status_code == 200
    for host in ("evil.example", f"evil.example:{PORT}", "127.0.0.1:9999", "127.0.0.1"):
        refused = client.get("/", headers={"Host": host})
        assert refused.status_code == 400 and "acme" not in refused.text
        assert refused.headers["Content-Security-Policy"] == SECURITY_HEADERS[
            "Content-Security-Policy"]
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        response = client.request(method, "/")
        assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_the_dashboard_listens_on_loopback_only(tmp_path: Path) -> None:
    path = filled_policy(tmp_path)
    refused = sangsaeng("client", "dashboard", "--policy", str(path), "--host", "0.0.0.0")
    assert refused.returncode == 2 and "serves on 127.0.0.1 only" in refused.stdout
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = sangsaeng("client", "dashboard", "--policy", str(path), "--port", port)
    assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stdout
