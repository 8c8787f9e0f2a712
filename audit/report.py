"""`sangsaeng audit report`: the audit as one self-contained HTML file (and JSON).

The HTML is for people who do not run the tool (auditors, regulators): plain string
building, every piece of text from the data escaped, inline CSS and inline SVG plots, and
nothing that loads from anywhere (a Content-Security-Policy forbids it too).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from sangsaeng.shared.rest.audit import AuditRecord, AuditRun, DatasetSpend

from .empirical import THREAT_MODELS, EmpiricalAudit, verdict_of
from .fetch import AuditData
from .verify import Verification

# Okabe-Ito colours: distinguishable with colour blindness, and in greyscale print.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
WARN_AT = 0.9  # share of the cap from which a budget bar is drawn in the warning colour
CAP_IN_PLOT = 1.6  # a cap is drawn in an ε plot if it is at most this times the plot's top ε
BAR_WIDTH, PLOT_W, PLOT_H = 240, 900, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 44  # the ε plots' margins around the data area

CSS = """
body{font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;color:#1d232a;max-width:1040px;
 margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}h3{margin:20px 0 4px;font-size:15px}
h2{margin:34px 0 8px;padding-bottom:4px;border-bottom:2px solid #dde3ea;font-size:19px}
.meta{color:#56606b;margin:2px 0}
.verdict{margin:14px 0;padding:12px 16px;border-radius:6px;color:#fff;font:700 22px sans-serif}
.verdict span{font-size:15px;font-weight:400;margin-left:10px}
.passed{background:#1e7d3a}.empirical-fails{background:#b3261e;font-size:17px}.failed{background:#b3261e}.incomplete{background:#8a5a00}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #e3e8ee;text-align:left;vertical-align:top}
th{background:#f3f5f8}.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
.st-ok{color:#1e7d3a;font-weight:700}.st-fail{color:#b3261e;font-weight:700}.st-na{color:#56606b}
svg text{font-size:12px;fill:#333}svg.epsilon-plot{max-width:100%;height:auto}
figure{margin:14px 0 26px}figcaption{font-weight:600;margin-bottom:4px}
.legend{font-size:13px}.legend span{margin-right:16px;white-space:nowrap}
@media print{body{padding:0;font-size:12px}*{print-color-adjust:exact}
 h2,h3,figcaption{break-after:avoid}tr,figure{break-inside:avoid}}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


class AuditReport(BaseModel):
    """Everything the report shows: what the coordinator served, and what was verified."""

    data: AuditData
    verification: Verification
    # `sangsaeng audit empirical` results the auditor was given (--empirical)
    empirical: list[EmpiricalAudit] = []


class _Html(str):
    """Markup built here, trusted as is; any other str put in a table is escaped."""


def _e(value: object) -> str:
    return html.escape(str(value))


def _eps(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _diff(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:+.1e}" if 0 < abs(x) < 1e-3 else f"{x:+.4f}"


def _time(value: str | dt.datetime | None) -> str:
    if value is None:
        return "—"
    try:
        when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    return when.isoformat(sep=" ", timespec="seconds").replace("+00:00", " UTC")


def _status(ok: bool | None, yes: str = "OK", no: str = "FAIL") -> _Html:
    cls, label = ("na", "not checked") if ok is None else ("ok", yes) if ok else ("fail", no)
    return _Html(f'<span class="st-{cls}">{label}</span>')


def _table(cls: str, head: Sequence[str], rows: Iterable[Sequence[object]],
           numeric: Sequence[int] = ()) -> str:
    """A table; columns whose index is in `numeric` are right-aligned."""
    def cell(tag: str, i: int, v: object) -> str:
        attr = ' class="num"' if i in numeric else ""
        return f"<{tag}{attr}>{v if isinstance(v, _Html) else _e(v)}</{tag}>"
    head_html = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return (f'<table class="{cls}"><thead><tr>{head_html}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def write_report(report: AuditReport, output: Path) -> None:
    """The HTML at `output`, the same report as JSON beside it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(report.model_dump_json(indent=1))
    output.write_text(render_html(report), encoding="utf-8")


def render_html(report: AuditReport) -> str:
    data, v = report.data, report.verification
    partners = sorted({b.partner for b in data.budgets}
                      | {r.partner for run in data.runs for r in run.records})
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(partners)}
    body = "".join((_header(data, v), _empirical_banner(report.empirical), _how_to_read(v),
                    _budgets(data.budgets, v), _epsilon_plots(data.runs, colours),
                    _verification(v), _empirical(report.empirical), _parameters(data.runs),
                    _keys_and_log(data)))
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Sangsaeng privacy audit</title><style>{CSS}</style></head>"
            f"<body>{body}<p class=\"meta\">Written by <code>sangsaeng audit report</code>. "
            "This file is self-contained: it loads nothing from anywhere.</p></body></html>\n")


def _header(data: AuditData, v: Verification) -> str:
    n, m = len(v.failures), len(v.incomplete)
    verdict = {
        "passed": '<div class="verdict passed">PASSED<span>no problems found</span></div>',
        "failed": f'<div class="verdict failed">FAILED<span>{n} problem{"s" * (n != 1)} '
                  'found (listed under Verification)</span></div>',
        "incomplete": f'<div class="verdict incomplete">INCOMPLETE<span>{m} thing'
                      f'{"s" * (m != 1)} not cross-checked (listed under Verification)'
                      '</span></div>'}[v.verdict]
    warned = f'<p class="meta">{len(v.warnings)} warning(s), see below.</p>' if v.warnings else ""
    return (f'<header><h1>Sangsaeng privacy audit</h1><p class="meta">Verified '
            f"{_e(_time(v.verified_at))}, from the audit API of the coordinator at "
            f"<code>{_e(data.api_url)}</code> (fetched {_e(_time(data.fetched_at))}).</p>"
            f"{verdict}{warned}</header>")


def _how_to_read(v: Verification) -> str:
    return (
        '<section id="how-to-read"><h2>How to read this</h2><p>Each partner dataset is protected '
        "by record-level (ε, δ)-differential privacy: adding or removing any one record changes "
        "the probability of anything that leaves the partner by at most a factor e<sup>ε</sup>, "
        "except with probability δ. Smaller ε is stronger privacy. ε composes over every DP-SGD "
        "step ever run on a dataset (every round, every run, every startup), so the figure that "
        "counts is the dataset's <b>lifetime ε</b>, which each partner caps. The partner's client "
        "computes ε with a tight accountant (privacy loss distributions, Google's dp_accounting) "
        "and records every step in its signed ledger. This auditor recomputed every claimed ε "
        "independently with Opacus' PRV accountant (tight, with certified bounds either side) "
        "and with RDP (a looser bound, which older releases claimed), cross-checked the "
        "partners' ledgers against the coordinator's records, and checked the audit log's hash "
        f"chain. A claimed ε passes if {_e(v.tolerance)}.</p>"
        "</section>")


def _budgets(budgets: list[DatasetSpend], v: Verification) -> str:
    rows = []
    for b in budgets:
        spent = spent_shown(b, v)
        rows.append((f"{b.partner} / {b.dataset}", _Html(_budget_bar(b, spent)), _eps(spent),
                     f"{b.epsilon_cap:g}", _remaining(spent, b.epsilon_cap), _g(b.delta), b.runs,
                     b.rounds))
    table = _table("budgets", ("Partner / dataset", "Lifetime ε spent of the cap", "Spent ε",
                               "Cap", "Remaining", "δ", "Runs", "Rounds"), rows,
                   numeric=(2, 3, 4, 5, 6, 7))
    return ('<section id="budgets"><h2>Privacy budget per partner dataset</h2>'
            '<p class="meta">Each dataset\'s lifetime ε against its cap: the largest of the '
            "partner's latest report, the auditor's recomputation and the partner's ledger "
            f"(which also counts rounds never reported); orange from {WARN_AT:.0%} of the cap, "
            "red over it.</p>"
            f"{table if budgets else '<p>No partner dataset has reported yet.</p>'}</section>")


def spent_shown(b: DatasetSpend, v: Verification) -> float:
    """What a budget bar shows: never less than any figure the audit saw."""
    figures = [b.reported_epsilon]
    figures += [a.recomputed if a.recomputed is not None else a.rdp for a in v.accountants
                if (a.partner, a.dataset) == (b.partner, b.dataset)]
    figures += [lr.ledger_epsilon for lr in v.ledgers if (lr.partner, lr.dataset)
                == (b.partner, b.dataset) and lr.ledger_epsilon is not None]
    return max(figures)


def _remaining(spent: float, cap: float) -> str:
    left = cap - spent
    return _eps(left) if left >= 0 else f"over by {_eps(-left)}"


def _budget_bar(b: DatasetSpend, spent: float) -> str:
    share = spent / b.epsilon_cap if b.epsilon_cap > 0 else math.inf
    colour = "#b3261e" if share > 1 else "#e69f00" if share >= WARN_AT else "#0072b2"
    width = BAR_WIDTH * min(share, 1.0)
    return (f'<svg class="budget-bar" width="{BAR_WIDTH + 50}" height="18" '
            f'data-partner="{_e(b.partner)}" data-dataset="{_e(b.dataset)}" '
            f'data-spent="{spent!r}" data-cap="{b.epsilon_cap!r}">'
            f'<rect class="track" x="0" y="2" width="{BAR_WIDTH}" height="14" fill="#e6eaef"/>'
            f'<rect class="spent" x="0" y="2" width="{width:.3f}" height="14" fill="{colour}"/>'
            f'<text x="{BAR_WIDTH + 6}" y="14">{share:.0%}</text></svg>')


def _epsilon_plots(runs: list[AuditRun], colours: dict[str, str]) -> str:
    figures = "".join(_epsilon_plot(run, colours) for run in runs if run.records)
    return ('<section id="epsilon-plots"><h2>ε over rounds, per run</h2><p class="meta">Solid: '
            "the dataset's lifetime ε after each round the partner reported; dashed: the ε of "
            "this run alone (drawn where it differs); dotted: a partner's cap. Partners that "
            "spent the same share one line (the table under Mechanisms has each).</p>"
            f"{figures or '<p>No run has privacy reports yet.</p>'}</section>")


def _ticks(top: float, count: int = 5) -> list[float]:
    """Evenly spaced round numbers (1, 2 or 5 times a power of ten) from 0 past `top`."""
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _epsilon_plot(run: AuditRun, colours: dict[str, str]) -> str:
    series: dict[str, list[AuditRecord]] = {}
    for r in sorted(run.records, key=lambda r: (r.round, r.ledger_seq)):
        series.setdefault(r.partner, []).append(r)
    first = min(r.round for r in run.records)
    last = max(max(r.round for r in run.records), first + 1)  # one round still gets a width
    top = max(max(max(r.lifetime_epsilon, r.epsilon) for r in run.records), 1e-6)
    caps = {p: rs[-1].epsilon_cap for p, rs in series.items()}
    shown = sorted({c for c in caps.values() if c <= CAP_IN_PLOT * top})
    y_ticks = _ticks(max([top, *shown]) * 1.04)
    width, height = PLOT_W - LEFT - RIGHT, PLOT_H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - first) / (last - first) * width

    def py(y: float) -> float:
        return TOP + height - y / y_ticks[-1] * height

    def line(x1: float, y1: float, x2: float, y2: float, style: str) -> str:
        return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}/>'

    def text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
        return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{_e(label)}</text>'

    parts = []
    for y in y_ticks:  # horizontal grid lines with their labels
        parts += [line(LEFT, py(y), LEFT + width, py(y), 'stroke="#e6eaef"'),
                  text(LEFT - 6, py(y) + 4, f"{y:g}", "end")]
    x_step = max(1, math.ceil(_ticks(last - first, 8)[1]))
    for x in range(first, last + 1, x_step):
        parts += [line(px(x), TOP + height, px(x), TOP + height + 5, 'stroke="#333"'),
                  text(px(x), TOP + height + 18, str(x))]
    parts += [line(LEFT, TOP, LEFT, TOP + height, 'stroke="#333"'),
              line(LEFT, TOP + height, LEFT + width, TOP + height, 'stroke="#333"'),
              text(LEFT + width / 2, PLOT_H - 6, "round"),
              text(18, TOP + height / 2 + 4, "ε")]
    for cap in shown:  # labelled at the left, where ε is lowest;
        # in the partner's colour, so that no line seems to cross another's cap
        whose = [p for p in series if caps[p] == cap]
        colour = colours[whose[0]] if len(whose) == 1 else "#555"
        parts += [line(LEFT, py(cap), LEFT + width, py(cap),
                       f'stroke="{colour}" stroke-dasharray="2 3" stroke-width="1.5"'),
                  text(LEFT + 6, py(cap) - 5, f"cap {cap:g}: {', '.join(whose)}", "start",
                       ' paint-order="stroke" stroke="#fff" stroke-width="4"')]
    for partner, records in series.items():
        colour, common = colours[partner], f'data-partner="{_e(partner)}" fill="none"'
        if any(not math.isclose(r.epsilon, r.lifetime_epsilon) for r in records):
            points = " ".join(f"{px(r.round):.1f},{py(r.epsilon):.1f}" for r in records)
            parts.append(f'<polyline class="series-run" {common} stroke="{colour}" '
                         f'stroke-width="1.5" stroke-dasharray="6 4" points="{points}"/>')
        points = " ".join(f"{px(r.round):.1f},{py(r.lifetime_epsilon):.1f}" for r in records)
        parts.append(f'<polyline class="series" {common} stroke="{colour}" stroke-width="2.5" '
                     f'points="{points}"/>')
        if len(records) <= 40:  # markers show where the reports are; too many only clutter
            parts += [f'<circle cx="{px(r.round):.1f}" cy="{py(r.lifetime_epsilon):.1f}" r="3" '
                      f'fill="{colour}"/>' for r in records]
    legend = "".join(
        f'<span><svg width="26" height="10"><line x1="0" y1="5" x2="26" y2="5" '
        f'stroke="{colours[p]}" stroke-width="3"/></svg> {_e(p)} (cap {caps[p]:g}'
        f'{"" if caps[p] in shown else ", above the plot"})</span>' for p in series)
    caption = (f"Run {run.id}: dataset {run.dataset}, owner {run.owner or '—'}, "
               f"status {run.status}")
    return (f'<figure><figcaption>{_e(caption)}</figcaption>'
            f'<svg class="epsilon-plot" data-run="{run.id}" width="{PLOT_W}" height="{PLOT_H}" '
            f'viewBox="0 0 {PLOT_W} {PLOT_H}" role="img" aria-label="{_e(caption)}">'
            f'{"".join(parts)}</svg><div class="legend">{legend}</div></figure>')


def _verification(v: Verification) -> str:
    accountants = _table("accountants", (
        "Partner", "Dataset", "History", "Reports", "Claimed ε", "PRV ε", "PRV bounds",
        "Claimed − PRV", "Max |claimed − PRV|", "RDP ε", "Status"), (
        (a.partner, a.dataset, a.history, a.reports, _eps(a.claimed), _eps(a.recomputed),
         f"{_eps(a.recomputed_lower)}–{_eps(a.recomputed_upper)}", _diff(a.difference),
         f"{a.max_difference:.2g}", _eps(a.rdp), _status(a.ok)) for a in v.accountants),
        numeric=range(3, 10))
    ledgers = _table("ledgers", (
        "Partner", "Dataset", "Export file", "Signature", "Chain", "Records matched",
        "Ledger ε", "Coordinator ε", "Status"), (
        (lg.partner, lg.dataset, lg.source or "—", lg.signature, lg.chain,
         f"{lg.matched} / {lg.records}",
         "—" if lg.ledger_epsilon is None else _eps(lg.ledger_epsilon),
         _eps(lg.coordinator_epsilon), _status(lg.ok)) for lg in v.ledgers),
        numeric=(5, 6, 7))
    log = v.audit_log
    head = ("empty" if log.head_seq is None else
            f"head entry {log.head_seq}, hash <code>{_e(log.head_hash)}</code>")
    failures = (_table("failures", ("Check", "Subject", "Message"),
                       ((f.check, f.subject, f.message) for f in v.failures)) if v.failures
                else '<p class="st-ok">No problems found.</p>')
    return ('<section id="verification"><h2>Verification</h2>'
            "<h3>Accountant: every claimed ε recomputed</h3><p class=\"meta\">The latest lifetime "
            "ε per partner dataset; “max |difference|” is over every ε (lifetime and run) of "
            f"every report.</p>{accountants}"
            "<h3>Ledgers: partners' signed exports against the coordinator's records</h3>"
            f"{ledgers}<h3>Audit log</h3><p>{log.entries} entries, {head}: "
            f"{_status(log.ok, 'chain intact', 'BROKEN')}</p>"
            f"<h3>Problems ({len(v.failures)})</h3>{failures}"
            f"<h3>Not cross-checked ({len(v.incomplete)})</h3>{_items('incomplete', v.incomplete)}"
            f"<h3>Warnings ({len(v.warnings)})</h3>{_items('warnings', v.warnings)}</section>")


def _empirical_banner(audits: list[EmpiricalAudit]) -> str:
    failed = [a for a in audits if a.verdict == "fails"]
    if not failed:
        return ""
    return (f'<div class="verdict empirical-fails">EMPIRICAL AUDIT FAILS<span>{len(failed)} of '
            f"{len(audits)} empirical audit(s) proved more ε than claimed (listed under "
            "Empirical audit)</span></div>")


def _empirical(audits: list[EmpiricalAudit]) -> str:
    """Each empirical audit beside the ε claimed and recomputed for the same mechanism."""
    intro = (
        '<section id="empirical"><h2>Empirical audit: does the DP code spend what it claims?'
        "</h2><p class=\"meta\">One training run of the partner's own DP-SGD code with "
        "canaries, each put in the data or left out by a fair coin; the auditor guesses which "
        "were in from a score per canary, and the number of right guesses proves a "
        "<b>lower bound</b> on ε at the stated confidence (Steinke, Nasr, Jagielski, "
        "“Privacy Auditing with One (1) Training Run”, NeurIPS 2023). <b>fails</b>: a lower "
        "bound exceeds the claimed ε, so the code does not do what its accountant says (a bug). "
        "<b>consistent</b>: no contradiction found, which does not prove privacy. "
        + " ".join(f"<i>{_e(k)}</i>: {_e(v)}." for k, v in THREAT_MODELS.items()) + "</p>")
    if not audits:
        return intro + "<p>No empirical audit was given (<code>--empirical</code>).</p></section>"
    rows = []
    for a in audits:
        m = a.mechanism
        mechanism = (f"σ {m.noise_multiplier:g}, q {m.sample_rate:.4g}, {m.steps} steps, "
                     f"C {a.max_grad_norm:g}")
        for c in a.audits:
            verdict = verdict_of(a, c)
            rows.append((a.dataset, _Html(f"<code>{_e(a.task_sha256[:12])}</code>"), mechanism,
                         _g(a.delta), _eps(a.claimed_epsilon), _eps(a.recomputed_epsilon),
                         c.threat_model, c.canaries, f"{c.best.correct} / {c.best.guesses}",
                         f"{a.confidence:.0%}", _eps(c.epsilon_lower),
                         _status(verdict == "consistent", "consistent", "FAILS")))
    faults = [f"{a.dataset}: {a.fault}" for a in audits if a.fault]
    table = _table("empirical", (
        "Dataset", "Task", "Mechanism", "δ", "Claimed ε", "PRV ε", "Threat model", "Canaries",
        "Right / guesses", "Confidence", "ε lower bound", "Verdict"), rows,
        numeric=(3, 4, 5, 7, 8, 9, 10))
    warning = (f'<p class="st-fail">Run with a test fault: {_e("; ".join(faults))}.</p>'
               if faults else "")
    return intro + warning + table + "</section>"


def _items(cls: str, items: list[str]) -> str:
    if not items:
        return "<p>None.</p>"
    return f'<ul class="{cls}">' + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _parameters(runs: list[AuditRun]) -> str:
    parts = []
    for run in runs:
        status = run.status + (f" ({run.reason})" if run.reason else "")
        meta = (f"Flower run {run.flower_run_id or '—'} · owner {run.owner or '—'} · dataset "
                f"{run.dataset} · status {status} · task sha256 {run.task_sha256[:12]} · "
                f"started {_time(run.started_at)} · finished {_time(run.finished_at)}")
        rows = ((r.round, r.partner, r.dataset, f"{r.noise_multiplier:g}", f"{r.sample_rate:g}",
                 r.steps, f"{r.trained_parameters:,}", f"{r.evaluation_noise_multiplier:g}",
                 _g(r.delta), _eps(r.epsilon), _eps(r.lifetime_epsilon), f"{r.epsilon_cap:g}",
                 r.ledger_seq)
                for r in run.records)
        table = _table("parameters", (
            "Round", "Partner", "Dataset", "σ", "q", "Steps", "Trained parameters", "σ eval", "δ",
            "Run ε (claimed)", "Lifetime ε (claimed)", "Cap", "Ledger entry"), rows,
            numeric=(0, *range(3, 13))) if run.records else "<p>No privacy reports.</p>"
        parts.append(f'<h3>Run {run.id}</h3><p class="meta">{_e(meta)}</p>{table}')
    return ('<section id="parameters"><h2>Mechanisms and claims, per run and round</h2>'
            '<p class="meta">σ: noise multiplier; q: Poisson sampling rate; steps: DP-SGD steps '
            "in the round; σ eval: noise multiplier of the round's evaluation release.</p>"
            + ("".join(parts) or "<p>No runs.</p>") + "</section>")


def _keys_and_log(data: AuditData) -> str:
    keys = _table("partners", ("Partner", "Public key (Ed25519, base64)", "Registered"), (
        (p.name, _Html(f"<code>{_e(p.public_key)}</code>"), _time(p.registered_at))
        for p in data.partners))
    log = (f"{len(data.log)} entries, from {_e(_time(data.log[0].time))} to "
           f"{_e(_time(data.log[-1].time))}; head entry {data.log[-1].seq}, hash "
           f"<code>{_e(data.log[-1].hash)}</code>." if data.log else "empty.")
    return ('<section id="partners"><h2>Registered partner keys and the audit log</h2>'
            f"{keys if data.partners else '<p>No partner keys registered.</p>'}"
            f"<p>Audit log as served: {log}</p></section>")
