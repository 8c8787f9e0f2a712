"""The dashboard in headless Chromium against a real coordinator (SuperLink, Fleet proxy,
API over TLS) with two real partner nodes training on Caravan.

Each role signs in with its token and sees what the API lets it see; a startup starts a
run in the browser, watches its rounds and ε arrive without reloading, downloads the
model and stops another run; the operator creates and revokes a token, which ends that
token's session; the auditor verifies partners' signed ledger exports. The screenshots in
docs/screenshots are taken here, so they show what the code does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from sangsaeng.audit.uploads import verify_records
from sangsaeng.client.ledger import export_ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.data import write_partitions
from sangsaeng.server.accounts import Role, authenticate, create_token, start_session
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.runs.states import OPEN
from sangsaeng.shared.http import ApiError
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.web import CONTENT_SECURITY_POLICY

from ..support.browser import chromium
from ..support.coordinator import join
from ..support.dashboard import Visit, visit
from ..support.processes import flower_processes
from ..support.records import TASK, api_stop, finished_run, register_caravan
from ..support.tasks import caravan_policy, task_with

# not north-bank: the made-up records of globex's run (finished_run) name it, and its
# ledger would rightly not match them
PARTNERS = ["east-bank", "south-insurance"]
XSS = "<script>window.pwned=1</script>"
LONG_TASK = task_with(rounds=60, local_epochs=1, min_nodes=2, round_timeout=300)


@dataclass
class Dashboard:
    coordinator: Coordinator
    browser: Browser
    workdir: Path
    tokens: dict[str, str]
    globex_run: int

    @property
    def origin(self) -> str:
        return self.coordinator.api_url

    def task_file(self, name: str, task: object) -> Path:
        path = self.workdir / name
        path.write_text(task.model_dump_json())  # type: ignore[attr-defined]
        return path

    def cookie_client(self, token: str) -> httpx.Client:
        """What a browser with this session cookie sends, without the page's forms."""
        return httpx.Client(base_url=self.origin, verify=False, timeout=30,
                            cookies={"__Host-sangsaeng-session": token},
                            follow_redirects=False)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    workdir = tmp_path_factory.mktemp("dashboard")
    paths = write_partitions(PARTNERS, workdir / "partners")
    with Coordinator(workdir / "coordinator", f"sqlite:///{workdir / 'store.db'}",
                     verifier=verify_records) as c:
        register_caravan(c.store)
        c.store.catalogue.put("xss-probe", DatasetEntry(
            name="xss-probe", description=XSS, features=TASK.features, target=TASK.target,
            partners=1, holders=[XSS], rows=0).model_dump_json())
        for name, data_path in zip(PARTNERS, paths, strict=True):
            join(c, name, caravan_policy(workdir / "partners", name, data_path))
        tokens = {"admin": create_token(c.store, "ops", Role.ADMIN),
                  "auditor": create_token(c.store, f"kfsa {XSS}", Role.AUDITOR),
                  "acme": create_token(c.store, "acme-ml", Role.STARTUP, "acme"),
                  "globex": create_token(c.store, "globex-ai", Role.STARTUP, "globex")}
        with chromium() as browser:
            yield Dashboard(c, browser, workdir, tokens, finished_run(c.store, "globex"))
        for run in c.store.runs.list(status=OPEN):  # stopped, or ending in Flower already
            with contextlib.suppress(ApiError):
                api_stop(c.api_url, tokens["admin"], run.id, c.ca_file)
    assert flower_processes() == []


def _clean(v: Visit) -> None:
    """Nothing from outside, no script error, every stylesheet and script loaded (pages
    the test opened on purpose may answer 403 or 404: the browser logs those too)."""
    assert v.outside_requests == []
    assert v.failed_resources == []
    assert [e for e in v.console_errors if not e.startswith("Failed to load resource")] == []
    assert not v.page.evaluate("window.pwned === 1")


def test_sign_in_refuses_a_wrong_token_and_keeps_tokens_out_of_urls(dashboard: Dashboard
                                                                    ) -> None:
    with visit(dashboard.browser, dashboard.origin) as v:
        v.go("/runs")
        assert v.page.url.startswith(dashboard.origin + "/sign-in")
        v.screenshot("sign-in")
        v.sign_in("sgs_not-a-token")
        expect(v.page.get_by_role("alert")).to_contain_text("not a valid API token")
        v.sign_in(dashboard.tokens["acme"])
        assert v.page.url == dashboard.origin + "/runs"
        cookie = next(c for c in v.page.context.cookies()
                      if c["name"] == "__Host-sangsaeng-session")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert cookie["value"].startswith("sgw_")  # a session's secret, not the token
        assert all(dashboard.tokens["acme"] not in url for url in v.urls)
        assert v.page.evaluate("document.cookie") == ""  # scripts cannot read the session


def test_a_startup_sees_its_runs_only_and_starts_one_that_updates_live(
        dashboard: Dashboard) -> None:
    with visit(dashboard.browser, dashboard.origin) as v:
        v.sign_in(dashboard.tokens["acme"])
        v.go("/runs/new")
        v.page.get_by_label("Task file").first.set_input_files(
            dashboard.task_file("task.json", TASK))
        v.page.get_by_role("button", name="Start the run").first.click()
        v.page.wait_for_load_state("load")
        assert re.search(r"/runs/\d+$", v.page.url), v.page.locator("main").inner_text()
        run_id = int(v.page.url.rsplit("/", 1)[1])
        v.page.evaluate("window.sameDocument = true")  # gone if the page reloads
        rows = v.page.locator("#privacy tbody tr")
        expect(rows).to_have_count(len(PARTNERS), timeout=240_000)
        expect(v.page.locator("#run-status")).to_have_text("completed", timeout=240_000)
        assert v.page.evaluate("window.sameDocument === true"), "the page was reloaded"
        eps = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(2)]
        assert all(e > 0 for e in eps)
        v.screenshot("startup-run")

        with v.page.expect_download() as download:
            v.page.get_by_role("link", name=re.compile("Download the model")).click()
        weights = Path(download.value.path()).read_bytes()
        run = dashboard.coordinator.store.runs.get(run_id)
        assert hashlib.sha256(weights).hexdigest() == run.model_sha256

        v.go("/runs")
        listed = {int(a.inner_text()) for a in v.page.locator("tbody td:first-child a").all()}
        assert run_id in listed and dashboard.globex_run not in listed
        v.screenshot("startup-runs")
        v.go(f"/runs/{dashboard.globex_run}")  # another tenant's: no such run
        expect(v.page.get_by_role("alert")).to_contain_text(f"no run {dashboard.globex_run}")
        v.go("/operator")
        expect(v.page.get_by_role("alert")).to_contain_text("startup role may not")
        v.go("/catalogue/caravan")
        expect(v.page.locator("h1")).to_have_text("caravan")
        v.screenshot("catalogue")
        v.go("/catalogue")
        assert XSS in v.page.locator("tbody").inner_text()  # shown as text, not run
        _clean(v)


def test_a_startup_stops_a_run_in_the_browser(dashboard: Dashboard) -> None:
    with visit(dashboard.browser, dashboard.origin) as v:
        v.sign_in(dashboard.tokens["acme"])
        v.go("/runs/new")
        v.page.get_by_label("Task file").first.set_input_files(
            dashboard.task_file("long.json", LONG_TASK))
        v.page.get_by_role("button", name="Start the run").first.click()
        v.page.wait_for_url(re.compile(r".*/runs/\d+$"))
        expect(v.page.locator("#run-status")).to_have_text("running", timeout=120_000)
        v.page.get_by_role("button", name="Stop this run").click()
        expect(v.page.locator("#run-status")).to_have_text("stopped", timeout=120_000)
        _clean(v)


def test_a_run_started_from_the_form_is_checked_against_the_catalogue(
        dashboard: Dashboard) -> None:
    with visit(dashboard.browser, dashboard.origin) as v:
        v.sign_in(dashboard.tokens["acme"])
        before = len(dashboard.coordinator.store.runs.list(owner="acme"))
        v.go("/runs/new?dataset=caravan")
        v.page.get_by_label("Rounds").fill("0")
        v.page.locator("#task-form").get_by_role("button", name="Start the run").click()
        expect(v.page.get_by_role("alert")).to_contain_text("rounds")
        assert v.page.url.endswith("/runs/new")
        expect(v.page.get_by_label("Rounds")).to_have_value("0")  # what was typed stays
        v.page.get_by_label("Hidden layer sizes").fill("16, wide")
        v.page.locator("#task-form").get_by_role("button", name="Start the run").click()
        expect(v.page.get_by_role("alert")).to_contain_text("hidden layer sizes: whole numbers")
        assert len(dashboard.coordinator.store.runs.list(owner="acme")) == before
        v.screenshot("start-run")
        _clean(v)


def test_the_auditor_sees_budgets_and_verifies_ledgers_but_gets_no_weights(
        dashboard: Dashboard) -> None:
    exports = []
    for name in PARTNERS:
        policy = PartnerPolicy.load(dashboard.workdir / "partners" / f"{name}.policy.toml")
        path = dashboard.workdir / f"{name}.ledger.json"
        path.write_text(export_ledger(policy, "caravan").model_dump_json())
        exports.append(path)
    with visit(dashboard.browser, dashboard.origin) as v:
        v.sign_in(dashboard.tokens["auditor"])
        assert v.page.url == dashboard.origin + "/audit"
        budgets = v.page.locator("#budgets tbody")
        for name in PARTNERS:
            expect(budgets).to_contain_text(name)
        expect(v.page.locator("svg.chart").first).to_be_visible()
        assert XSS in v.page.locator("header").inner_text()  # its own name, inert
        v.screenshot("auditor")
        v.go("/audit/verify")
        v.page.get_by_label(re.compile("signed ledger exports")).set_input_files(exports)
        v.page.get_by_role("button", name="Verify").click()
        expect(v.page.locator("#ledgers")).to_contain_text("east-bank / caravan")
        v.screenshot("auditor-verify")
        # the recorded globex run's made-up partner has no export: failed or incomplete,
        # but both real partners' ledgers check out
        for name in PARTNERS:
            row = v.page.locator("#ledgers tr", has_text=f"{name} / caravan")
            expect(row.locator("td").last).to_have_text("ok")
        v.go("/audit/log")
        expect(v.page.locator("tbody")).to_contain_text("POST /api/v1/runs")
        _clean(v)
        run_id = dashboard.coordinator.store.runs.list(owner="acme")[0].id
        v.go(f"/runs/{run_id}")
        assert v.page.get_by_role("link", name=re.compile("Download")).count() == 0
        answer = v.page.request.get(f"{dashboard.origin}/api/v1/runs/{run_id}/model")
        assert answer.status == 403


def test_the_operator_creates_and_revokes_a_token_which_ends_its_session(
        dashboard: Dashboard) -> None:
    with visit(dashboard.browser, dashboard.origin) as admin:
        admin.sign_in(dashboard.tokens["admin"])
        assert admin.page.url == dashboard.origin + "/operator"
        admin.page.get_by_label("Holder").fill(f"initech {XSS}")
        admin.page.get_by_label("Tenant").fill("initech")
        admin.page.get_by_role("button", name="Create token").click()
        token = admin.page.locator("#new-token-value").inner_text()
        assert token.startswith("sgs_")
        with visit(dashboard.browser, dashboard.origin) as startup:
            startup.sign_in(token)
            assert startup.page.url == dashboard.origin + "/runs"
            token_id = next(t.id for t in dashboard.coordinator.store.tokens.list()
                            if t.tenant == "initech")
            admin.go("/operator")
            admin.page.get_by_role("button", name=f"Revoke token {token_id} of").click()
            expect(admin.page.locator("#tokens")).to_contain_text("initech")
            admin.screenshot("operator")  # after the page that showed the token once
            startup.go("/runs")
            assert "/sign-in" in startup.page.url
            expect(startup.page.get_by_role("alert")).to_contain_text("session has ended")
            assert all(token not in url for url in startup.urls + admin.urls)
        _clean(admin)
    log = dashboard.coordinator.store.audit_log.entries(0, 10_000)
    assert any("token" in (e.action + (e.detail or "")) for e in log
               if e.action.startswith("POST /api/v1/admin/tokens"))
    text = json.dumps([[e.actor, e.action, e.detail] for e in log])
    assert token not in text and all(t not in text for t in dashboard.tokens.values())
    logs = dashboard.coordinator.workdir / "logs"
    for path in logs.rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path


def test_every_state_changing_form_needs_its_csrf_value_and_our_origin(
        dashboard: Dashboard) -> None:
    token = dashboard.tokens["admin"]
    from sangsaeng.server.web.session import csrf_for
    forms = ["/sign-out", "/runs/new", f"/runs/{dashboard.globex_run}/stop",
             "/operator/tokens", "/operator/tokens/1/revoke", "/operator/partners",
             "/operator/partners/north-bank/remove", "/operator/datasets",
             "/operator/datasets/caravan/remove", "/audit/verify"]
    before = len(dashboard.coordinator.store.tokens.list())
    with dashboard.cookie_client(token) as browser:
        for path in forms:
            assert browser.post(path, data={"name": "x", "role": "admin"}).status_code == 403
            assert browser.post(path, data={"csrf": "0" * 64}).status_code == 403
            foreign = browser.post(path, data={"csrf": csrf_for(token)},
                                   headers={"Origin": "https://evil.example"})
            assert foreign.status_code == 403, path
        signed_in = browser.post("/sign-in", data={"token": token})  # no sign-in nonce
        assert signed_in.status_code == 403
    assert len(dashboard.coordinator.store.tokens.list()) == before
    assert dashboard.coordinator.store.tokens.list()[0].revoked_at is None
    assert all(p.removed_at is None for p in dashboard.coordinator.store.partners.list())
    assert dashboard.coordinator.store.catalogue.get("caravan") is not None


PAGES = {"acme": ["/runs", "/runs/new?dataset=caravan", "/catalogue", "/catalogue/xss-probe"],
         "auditor": ["/audit", "/audit/log", "/audit/verify"], "admin": ["/operator"]}
LABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(e => e.type !== 'hidden')
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !(e.tagName === 'BUTTON' && e.textContent.trim()))
    .map(e => e.outerHTML)"""


def test_every_control_is_labelled_and_sign_in_works_from_the_keyboard(
        dashboard: Dashboard) -> None:
    with visit(dashboard.browser, dashboard.origin) as v:
        v.go("/sign-in")
        for _ in range(10):  # from the top of the page, as a keyboard user does
            v.page.keyboard.press("Tab")
            if v.page.evaluate("document.activeElement.id") == "token":
                break
        v.page.keyboard.type(dashboard.tokens["acme"])
        v.page.keyboard.press("Enter")
        v.page.wait_for_url(dashboard.origin + "/runs")
        assert v.page.evaluate(LABELLED) == []
    for who, paths in PAGES.items():
        with visit(dashboard.browser, dashboard.origin) as v:
            v.sign_in(dashboard.tokens[who])
            for path in paths:
                v.go(path)
                assert v.page.evaluate(LABELLED) == [], (who, path)
            _clean(v)


def test_every_page_has_the_strict_content_security_policy(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.origin, verify=False) as anonymous:
        answer = anonymous.get("/sign-in")
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for who, paths in PAGES.items():
        with dashboard.cookie_client(dashboard.tokens[who]) as browser:
            for path in paths:
                answer = browser.get(path)
                assert answer.status_code == 200, (who, path)
                assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
                assert "script-src 'self'" in answer.headers["content-security-policy"]
                assert answer.headers["x-frame-options"] == "DENY"
                assert "<script>window" not in answer.text  # escaped wherever it shows


def test_a_post_to_the_api_with_only_the_session_cookie_is_refused(dashboard: Dashboard
                                                                   ) -> None:
    """Cookies authenticate reads only: a cross-site POST carrying the cookie (were the
    browser to send it) cannot start a run."""
    with dashboard.cookie_client(dashboard.tokens["acme"]) as browser:
        answer = browser.post("/api/v1/runs", content=TASK.model_dump_json(),
                              headers={"Content-Type": "application/json"})
        assert answer.status_code == 401
        assert browser.get("/api/v1/runs").status_code == 200
    time.sleep(0)


def test_a_revoked_token_s_event_stream_ends(dashboard: Dashboard) -> None:
    store = dashboard.coordinator.store
    token = create_token(store, "acme-intern", Role.STARTUP, "acme")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=dashboard.origin + "/api/v1", verify=False, timeout=30) as api:
        run_id = api.post("/runs", content=LONG_TASK.model_dump_json(),
                          headers={**headers, "Content-Type": "application/json"}).json()["id"]
        try:
            with api.stream("GET", f"/runs/{run_id}/events", headers=headers) as events:
                lines = events.iter_lines()
                assert next(lines).startswith("event: ")  # the stream is open
                store.tokens.revoke(store.tokens.list()[-1].id)
                started = time.monotonic()
                for _ in lines:  # ends by itself once the revocation is seen
                    assert time.monotonic() - started < 30, "the stream outlived its token"
        finally:
            api_stop(dashboard.origin, dashboard.tokens["admin"], run_id,
                     dashboard.coordinator.ca_file)


def test_a_session_s_event_stream_ends_at_sign_out(dashboard: Dashboard) -> None:
    from sangsaeng.server.web.session import csrf_for

    store = dashboard.coordinator.store
    account = authenticate(store, dashboard.tokens["acme"])
    assert account is not None
    secret = start_session(store, account)
    with dashboard.cookie_client(secret) as browser:
        run_id = browser.post("/api/v1/runs", content=LONG_TASK.model_dump_json(), headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
        ).json()["id"]
        try:
            with browser.stream("GET", f"/api/v1/runs/{run_id}/events") as events:
                lines = events.iter_lines()
                assert next(lines).startswith("event: ")
                signed_out = browser.post("/sign-out", data={"csrf": csrf_for(secret)})
                assert signed_out.status_code == 303
                started = time.monotonic()
                for _ in lines:
                    assert time.monotonic() - started < 30, "the stream outlived its session"
        finally:
            api_stop(dashboard.origin, dashboard.tokens["acme"], run_id,
                     dashboard.coordinator.ca_file)


def test_forms_are_bounded_before_they_are_read(dashboard: Dashboard) -> None:
    big = b"x" * (3 * 2**20)
    with httpx.Client(base_url=dashboard.origin, verify=False, timeout=30,
                      follow_redirects=False) as anonymous:
        for path in ["/sign-out", "/runs/1/stop", "/operator/tokens", "/runs/new"]:
            answer = anonymous.post(path, content=big)  # no session: never read
            assert (answer.status_code, answer.headers.get("location")) == (
                303, "/sign-in?ended=1"), path
        assert anonymous.post("/sign-in", content=big).status_code == 413
    with dashboard.cookie_client(dashboard.tokens["acme"]) as startup:
        assert startup.post("/runs/new", content=b"x" * (3 * 2**20)).status_code == 413
        assert startup.post("/audit/verify", content=b"x").status_code == 403
        assert startup.post("/operator/datasets", content=b"x").status_code == 403
        assert startup.post("/runs/1/stop", content=b"x" * 2**17).status_code == 413


def test_bad_numbers_and_task_files_are_422_and_start_nothing(dashboard: Dashboard) -> None:
    from sangsaeng.server.web.session import csrf_for

    token = dashboard.tokens["acme"]
    before = len(dashboard.coordinator.store.runs.list())
    form = {"csrf": csrf_for(token), "dataset": "caravan", "feature": "MOSTYPE",
            "model": "logreg", "rounds": "1", "learning_rate": "inf", "budget": "sigma",
            "noise_multiplier": "1", "max_grad_norm": "1", "delta": "1e-5",
            "min_nodes": "1", "round_timeout": "60"}
    files = {"t.toml": b"rounds = 1979-05-27\n", "t.json": b"[" * 200_000 + b"]" * 200_000,
             "n.json": b'{"rounds": NaN}'}
    with dashboard.cookie_client(token) as startup:
        answer = startup.post("/runs/new", data=form,
                              headers={"Origin": dashboard.origin})
        assert answer.status_code == 422 and "learning rate: not a finite number" in answer.text
        for name, content in files.items():
            answer = startup.post("/runs/new", data={"csrf": csrf_for(token)},
                                  files={"task_file": (name, content)})
            assert answer.status_code == 422, (name, answer.text[:300])
    assert len(dashboard.coordinator.store.runs.list()) == before


def test_sign_ins_and_outs_are_in_the_audit_log(dashboard: Dashboard) -> None:
    with visit(dashboard.browser, dashboard.origin) as v:
        v.sign_in(dashboard.tokens["globex"])
        secret = next(c["value"] for c in v.page.context.cookies()
                      if c["name"] == "__Host-sangsaeng-session")
        v.page.get_by_role("button", name="Sign out").click()
        v.page.wait_for_url(dashboard.origin + "/sign-in")
    with dashboard.cookie_client(secret) as copied:  # a copy of the cookie is dead too
        assert copied.get("/runs").headers["location"].startswith("/sign-in")
        assert copied.get("/api/v1/runs").status_code == 401
    with httpx.Client(base_url=dashboard.origin, verify=False) as client:
        assert client.get("/api/v1/runs", headers={
            "Authorization": f"Bearer {secret}"}).status_code == 401
    log = dashboard.coordinator.store.audit_log.entries(0, 100_000)
    mine = [(e.action, e.outcome) for e in log
            if e.actor == "globex-ai" and e.action.startswith("POST /sign-")]
    assert mine[-2:] == [("POST /sign-in", "303"), ("POST /sign-out", "303")]
    refused = [e for e in log if e.action == "POST /sign-in" and e.outcome == "401"]
    assert refused and refused[0].actor == "anonymous"  # the wrong token of the first test
