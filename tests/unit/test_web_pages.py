"""The dashboard's templates and charts on their own: what a run page shows (the receipt,
refusals, ε against caps), and that names from outside are escaped everywhere."""

from __future__ import annotations

import asyncio
import datetime as dt

from sangsaeng.server.accounts import Account, Role
from sangsaeng.server.web.pages import Visitor, render
from sangsaeng.server.web.routes.runs import _run_view
from sangsaeng.shared.rest.runs import (
    MetricChange,
    PartnerPrivacy,
    Receipt,
    RoundOut,
    RunOut,
)
from sangsaeng.shared.web.charts import Series, bar_chart, line_chart

XSS = "<script>alert(1)</script>"


def _run() -> RunOut:
    privacy = PartnerPrivacy(partner=f"bank {XSS}", dataset="reviews", noise_multiplier=0.6,
                             sample_rate=0.1, steps=20, evaluation_noise_multiplier=5.0,
                             trained_parameters=100, delta=1e-5, epsilon=1.25,
                             lifetime_epsilon=3.5, epsilon_cap=6.0)
    rounds = [RoundOut(round=r, trained_nodes=1, evaluated_nodes=1,
                       metrics={"auc": 0.6 + r / 10}, partner_errors=[f"refused {XSS}"],
                       privacy=[privacy]) for r in (1, 2)]
    return RunOut(id=4, flower_run_id="1", owner="acme", dataset="reviews",
                  task_sha256="ab" * 32, status="completed", reason=None,
                  started_at=dt.datetime(2026, 12, 6, 9, 0), finished_at=None,
                  rounds_planned=2, rounds_done=2, model_sha256="cd" * 32, rounds=rounds,
                  receipt=Receipt(final_round=2, base_partners=1, final_partners=1,
                                  metrics=[MetricChange(metric="auc", base=0.61,
                                                        improved=0.68)]))


def test_a_run_page_shows_the_receipt_refusals_and_budgets_escaped() -> None:
    class FakeApi:  # only what _run_view asks of the API
        async def get(self, path: str) -> object:
            assert path == "/runs/4"
            return _run().model_dump(mode="json")

    visitor = Visitor(Account(1, "acme-ml", Role.STARTUP, "acme"), FakeApi(),  # type: ignore[arg-type]
                      "c" * 64)
    view = asyncio.run(_run_view(visitor, 4))
    html = bytes(render("run_live.html", visitor, **view).body).decode()
    assert "Receipt" in html and "0.6100" in html and "0.6800" in html and "+0.0700" in html
    assert html.count("refused &lt;script&gt;") == 2 and XSS not in html
    assert "3.50" in html and "6.00" in html and "2.50" in html  # lifetime, cap, remaining
    assert "Download the model" in html and "Stop this run" not in html  # completed
    auditor = Visitor(Account(2, "kfsa", Role.AUDITOR, None), visitor.api, "d" * 64)
    html = bytes(render("run_live.html", auditor, **{**view, "may_download": False,
                                                     "may_stop": False}).body).decode()
    assert "Download the model" not in html


def test_charts_escape_names_and_mark_a_bar_over_its_cap() -> None:
    line = str(line_chart([Series(XSS, [(1, 0.5), (2, 1.0)])], XSS, "round", "ε", cap=2))
    assert XSS not in line and "&lt;script&gt;" in line
    bars = str(bar_chart([("under", 1.0, 2.0), ("over", 3.0, 2.0)], "budgets"))
    assert bars.count('class="bar s0 over"') == 1 and bars.count('class="bar s0"') == 1
    assert "ε 3.00 / 2" in bars


def test_the_run_form_builds_a_task_from_the_catalogue_entry() -> None:
    from starlette.datastructures import FormData, UploadFile

    from sangsaeng.server.web.routes.runs import _task_form
    from sangsaeng.shared.task import TaskSpec

    from ..support.records import TASK

    entry = {"name": "caravan", "target": TASK.target.model_dump(mode="json"),
             "features": [f.model_dump(mode="json") for f in TASK.features]}
    chosen = [f.name for f in TASK.features[:3]]
    fields: list[tuple[str, str | UploadFile]] = [
        ("model", "logreg"), ("hidden", "16"), ("rounds", "2"), ("learning_rate", "0.5"),
        ("budget", "target"), ("target_epsilon", "2"), ("max_grad_norm", "1"),
        ("delta", "1e-5"), ("min_nodes", "2"), ("round_timeout", "120"),
        *(("feature", name) for name in chosen)]
    task = TaskSpec.from_dict(_task_form(FormData(fields), entry))
    assert [f.name for f in task.features] == chosen
    assert task.model.kind == "logreg" and task.model.hidden == []  # the mlp's field, left out
    assert task.dp.target_epsilon == 2 and task.rounds == 2 and task.local_epochs is None
