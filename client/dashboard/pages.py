"""The partner page's HTML, rendered from the policy and the ledgers on every request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from sangsaeng.shared.web import environment
from sangsaeng.shared.web.charts import Series

from ..budget import DatasetLedger, dataset_ledger, epsilon_timeline
from ..ledger import LedgerMismatch, LedgerMissing
from ..policy import PartnerPolicy

STATIC_URL = "/static"
_env = environment(Path(__file__).parent / "templates")
# The figures as `sangsaeng client budget` prints them, so both read the same.
_env.filters["e3"] = lambda value: f"{value:.3f}"
_env.filters["g"] = lambda value: "–" if value is None else f"{value:g}"


@dataclass
class DatasetView:
    name: str
    ledger: DatasetLedger | None = None
    problem: str | None = None  # why there is no ledger to read (missing, another file's)
    timeline: list[tuple[int, float]] = field(default_factory=list)  # only on its own page


# ε after a ledger entry, by the entry's hash and δ (see epsilon_timeline)
Known = dict[tuple[str, float], float]


def _read(policy: PartnerPolicy, name: str, timeline: bool,
          known: Known | None = None) -> DatasetView:
    try:
        read = dataset_ledger(policy, name)
    except (LedgerMissing, LedgerMismatch) as err:
        return DatasetView(name, problem=str(err))
    view = DatasetView(name, read)
    if timeline and read.budget is not None:  # a broken chain's history is not accounted
        view.timeline = epsilon_timeline(read.entries, read.budget.delta, known=known)
    return view


def _when(iso: str) -> str:
    """Ledger times are UTC ISO 8601; shown to the second."""
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_index(policy: PartnerPolicy) -> str:
    views = [_read(policy, name, timeline=False) for name in policy.datasets]
    bars = [(v.name, v.ledger.budget.spent, v.ledger.budget.cap) for v in views
            if v.ledger is not None and v.ledger.budget is not None]
    return _env.get_template("index.html").render(
        static_url=STATIC_URL, partner=policy.partner, views=views, bars=bars)


def render_dataset(policy: PartnerPolicy, name: str, known: Known | None = None) -> str:
    """Raises policy.TaskRefused if the policy has no dataset `name`. `known`: ε's computed
    for earlier requests, kept by a long-running server."""
    policy.dataset(name)
    view = _read(policy, name, timeline=True, known=known)
    series = [Series("lifetime ε", view.timeline)] if view.timeline else []
    return _env.get_template("dataset.html").render(
        static_url=STATIC_URL, partner=policy.partner, view=view, series=series, when=_when)


def render_error(status: int, message: str) -> str:
    return _env.get_template("error.html").render(static_url=STATIC_URL, status=status,
                                                  message=message)
