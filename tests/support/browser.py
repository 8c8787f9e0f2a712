"""Open a local HTML file, or a page a local server serves, in the system's headless
Chromium (Playwright, sync API).

Every request other than the file itself (or the server's own origin) is blocked and
recorded, so a test can prove a page is self-contained; console errors and uncaught
exceptions are collected too.
Playwright's own browser downloads are not used: the machine may have no internet, and
the system's Chromium (`apt-get install chromium`, done by the Makefile) is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Request, Response, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches out on its own (updates, sync, QUIC probes...).
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class NoChromium(RuntimeError):
    pass


@dataclass
class Opened:
    page: Page
    outside_requests: list[str] = field(default_factory=list)  # blocked: not the file itself
    console_errors: list[str] = field(default_factory=list)
    response: Response | None = None  # the first page's


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system's Chromium, headless; one per test module is enough (Playwright's sync
    API cannot be started twice at once in a thread)."""
    if not CHROMIUM.exists():
        raise NoChromium(f"{CHROMIUM} is missing: install the system's Chromium "
                         "(`apt-get install -y chromium`, or `make install`); "
                         "`playwright install` is not used")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_html(browser: Browser, path: Path, width: int = 1100,
              height: int = 900) -> Iterator[Opened]:
    """`path` loaded in a fresh browser context, its outside requests blocked."""
    url = path.resolve().as_uri()
    with _opened(browser, url, lambda request_url: request_url == url, width, height,
                 javascript=True) as opened:
        yield opened


@contextmanager
def open_url(browser: Browser, url: str, width: int = 1100, height: int = 900,
             javascript: bool = True) -> Iterator[Opened]:
    """An http:// page (a local server's) loaded in a fresh browser context: requests to
    its own origin go through, any other is blocked and recorded. `opened.response` is the
    page's (its headers); `opened.page.goto` follows the same rules to the origin's other
    pages."""
    origin = "{0.scheme}://{0.netloc}/".format(urlsplit(url))
    with _opened(browser, url, lambda request_url: request_url.startswith(origin), width,
                 height, javascript) as opened:
        yield opened


@contextmanager
def _opened(browser: Browser, url: str, allowed: Callable[[str], bool], width: int,
            height: int, javascript: bool) -> Iterator[Opened]:
    context = browser.new_context(viewport={"width": width, "height": height},
                                  service_workers="block", java_script_enabled=javascript)
    try:
        page = context.new_page()
        opened = Opened(page)

        def route(route: Route) -> None:
            if allowed(route.request.url):
                route.continue_()
            else:
                route.abort()

        def request(request: Request) -> None:  # also sees what routing does not
            if not allowed(request.url):
                opened.outside_requests.append(request.url)

        context.route("**/*", route)
        page.on("request", request)
        page.on("console", lambda message: opened.console_errors.append(message.text)
                if message.type == "error" else None)
        page.on("pageerror", lambda error: opened.console_errors.append(str(error)))
        opened.response = page.goto(url, wait_until="load")
        yield opened
    finally:
        context.close()
