"""What the coordinator's dashboard and the partner's own page share: one stylesheet, the
base template, charts drawn on the server (inline SVG: no script needed to see them), and
the headers every page is served with."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from .charts import bar_chart, line_chart

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# Nothing from outside, no inline script or style (a `<script>` smuggled into a name cannot
# run even if it escaped the templates' escaping), no framing, forms only to this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with
    # forms, and the forms check their origin
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # pages show budgets and names: not for shared caches
}


def environment(templates: Path) -> Environment:
    """Jinja2 over `templates` (a role's pages), then the shared base; every value
    escaped (HTML and XML templates alike)."""
    env = Environment(loader=ChoiceLoader([FileSystemLoader(templates),
                                           FileSystemLoader(HERE / "templates")]),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(line_chart=line_chart, bar_chart=bar_chart)
    # a name as one path segment: '/' encoded too (Jinja's urlencode keeps it)
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    env.filters["eps"] = lambda value: "–" if value is None else f"{value:.2f}"
    return env


__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "STATIC_DIR", "environment"]
