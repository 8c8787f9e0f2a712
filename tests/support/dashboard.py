"""The coordinator's dashboard in headless Chromium: one browser context per signed-in
person, every request outside the coordinator's origin blocked and recorded, every URL
the browser asked for kept (a test checks no token is in any), console errors collected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, Request, Response, Route

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Visit:
    page: Page
    origin: str
    urls: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)  # not pages: CSS, script...

    def go(self, path: str) -> None:
        self.page.goto(self.origin + path, wait_until="load")

    def sign_in(self, token: str) -> None:
        self.go("/sign-in")
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state("load")

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@contextmanager
def visit(browser: Browser, origin: str) -> Iterator[Visit]:
    """A fresh context (no cookies) on `origin`; the coordinator's certificate comes from
    the test's own CA, so the browser is told not to check it."""
    context = browser.new_context(viewport={"width": 1200, "height": 900},
                                  ignore_https_errors=True, service_workers="block",
                                  accept_downloads=True)
    try:
        page = context.new_page()
        v = Visit(page, origin)

        def route(route: Route) -> None:
            if route.request.url.startswith(origin + "/"):
                route.continue_()
            else:
                route.abort()

        def request(request: Request) -> None:
            v.urls.append(request.url)
            if not request.url.startswith(origin + "/"):
                v.outside_requests.append(request.url)

        def response(response: Response) -> None:
            if response.status >= 400 and response.request.resource_type != "document":
                v.failed_resources.append(f"{response.status} {response.url}")

        context.route("**/*", route)
        page.on("response", response)
        page.on("request", request)
        page.on("console", lambda m: v.console_errors.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: v.console_errors.append(str(e)))
        yield v
    finally:
        context.close()
