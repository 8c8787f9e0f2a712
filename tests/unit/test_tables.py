"""Every table the CLIs print is readable in an 80-column terminal: no line over 80, no
value cut into "…" or split across lines, every value it promises there whole. And a wide
terminal still gets the full table, a row a line."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from sangsaeng.audit.verify import AccountantResult, LedgerResult, LogResult, Verification
from sangsaeng.audit.views import print_verification
from sangsaeng.client.budget import DatasetBudget, RunSpend
from sangsaeng.client.cli import print_budget
from sangsaeng.server.db import Store
from sangsaeng.shared.node_keys import create_node_key
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import (
    MetricChange,
    PartnerPrivacy,
    Receipt,
    RoundOut,
    RunOut,
    RunSummary,
)
from sangsaeng.shared.tables import print_table
from sangsaeng.views import print_catalogue, print_dataset, print_run, print_runs

from ..support.cli import sangsaeng

PARTNERS = ["daehan-life-and-fire-insurance-seoul", "hanbit-commercial-bank-busan-branch",
            "minjung-mutual-savings-cooperative"]
DATASET = "caravan-insurance-policyholders-2026-q4-holdout"
OWNER = "acme-predictive-analytics-korea"
SHA = hashlib.sha256(b"task").hexdigest()
FLOWER_RUN = "18446744073709551557"  # a uint64, as Flower numbers runs
STARTED = dt.datetime(2026, 12, 6, 14, 3, 11)


def rendered(print_it: Callable[[Console], None], width: int = 80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    print_it(console)
    console.file.close()
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def assert_readable(out: str, values: list[str], width: int = 80) -> None:
    too_long = [line for line in out.splitlines() if len(line) > width]
    assert too_long == [], out
    assert "…" not in out, out
    missing = [v for v in values if v not in out]
    assert missing == [], out


def a_run(rounds: int = 3, reason: str | None = None) -> RunOut:
    def privacy(partner: str, r: int) -> PartnerPrivacy:
        return PartnerPrivacy(partner=partner, dataset=DATASET, noise_multiplier=1.1,
                              sample_rate=0.01, steps=100, evaluation_noise_multiplier=5.0,
                              trained_parameters=1234, delta=1e-5, epsilon=0.123 * r + 0.0111,
                              lifetime_epsilon=0.5 * r, epsilon_cap=8.0)

    return RunOut(
        id=12, flower_run_id=FLOWER_RUN, owner=OWNER, dataset=DATASET, task_sha256=SHA,
        status="completed", reason=reason, started_at=STARTED, finished_at=None,
        rounds_planned=rounds, rounds_done=rounds, model_sha256=SHA,
        rounds=[RoundOut(round=r, trained_nodes=3, evaluated_nodes=3,
                         metrics={"loss": 0.5 - r / 100, "accuracy": 0.7 + r / 100},
                         partner_errors=[], privacy=[privacy(p, r) for p in PARTNERS])
                for r in range(rounds + 1)],
        receipt=Receipt(final_round=rounds, base_partners=3, final_partners=3,
                        metrics=[MetricChange(metric="accuracy", base=0.7, improved=0.73),
                                 MetricChange(metric="loss", base=0.5, improved=0.47)]))


def test_a_run_fits_80_columns_a_line_per_round_and_partner() -> None:
    run = a_run()
    out = rendered(lambda c: print_run(run, c))
    eps = [f"{p.epsilon:.2f}" for r in run.rounds for p in r.privacy]
    assert_readable(out, [*PARTNERS, FLOWER_RUN, "0.470", "0.730", "+0.030", *eps])
    for partner in PARTNERS:  # a round's each partner on a line with its ε
        assert any(partner in line and "0.38" in line for line in out.splitlines()), out


def test_a_run_in_a_wide_terminal_has_a_column_per_partner() -> None:
    out = rendered(lambda c: print_run(a_run(), c), width=200)
    header = next(line for line in out.splitlines() if "accuracy" in line)
    assert all(f"ε {p}" in header for p in PARTNERS)
    assert_readable(out, [], width=200)


def test_the_runs_list_fits_80_columns() -> None:
    reason = ("partner minjung-mutual-savings-cooperative refused: the task's epsilon "
              "would exceed its lifetime cap of 8 on the dataset")
    runs = [RunSummary(**a_run(reason=reason).model_dump(exclude={"rounds", "receipt"})),
            RunSummary(**{**a_run().model_dump(exclude={"rounds", "receipt"}), "id": 13,
                          "owner": None})]
    out = rendered(lambda c: print_runs(runs, c))
    assert_readable(out, [DATASET, OWNER, "completed", "3/3", "2026-12-06", "14:03:11",
                          "12", "13", *reason.split()])
    wide = rendered(lambda c: print_runs(runs, c), width=250)
    assert any(DATASET in line and OWNER in line and "2026-12-06 14:03:11" in line
               for line in wide.splitlines()), wide


def test_the_verification_fits_80_columns() -> None:
    ledger = f"{PARTNERS[0]}.ledger.json"  # the export's file name
    result = Verification(
        verified_at="2026-12-06T14:03:11Z",
        accountants=[AccountantResult(
            partner=p, dataset=DATASET, history="partner ledger", reports=4, claimed=0.97516,
            recomputed=0.97512, recomputed_lower=0.97401, recomputed_upper=0.97623,
            difference=4e-5, tolerance=1.05, max_difference=4.2e-5, rdp=1.03211, ok=True,
            delta=1e-5, epsilon_cap=8.0) for p in PARTNERS],
        ledgers=[LedgerResult(partner=p, dataset=DATASET, source=ledger,
                              signature="no registered key",
                              chain="broken at entry 17: its hash does not match its contents",
                              entries=9, records=4, matched=3, ledger_epsilon=0.97516,
                              coordinator_epsilon=0.97512, ok=False) for p in PARTNERS],
        audit_log=LogResult(entries=120, head_seq=120, head_hash=SHA, ok=True),
        failures=[], warnings=[])
    out = rendered(lambda c: print_verification(result, c))
    assert_readable(out, [*PARTNERS, DATASET, ledger, SHA, "0.9752",
                          "0.9751", "0.9740–0.9762", "4.2e-05", "1.0321", "no registered key",
                          "3 of 4", "partner ledger"])
    wide = rendered(lambda c: print_verification(result, c), width=250)
    rows = [line for line in wide.splitlines() if "partner ledger" in line]
    assert len(rows) == 3 and all(len(row.split("│")) == 11 for row in rows), wide


def test_a_partners_budget_fits_80_columns() -> None:
    runs = [RunSpend(run_id=str(18446744073709551557 - i), rounds=20, committed=19,
                     epsilon=1.2345) for i in range(3)]
    budget = DatasetBudget(partner=PARTNERS[0], dataset=DATASET, cap=10, delta=1e-5,
                           spent=3.25, remaining=6.75, runs=runs)
    out = rendered(lambda c: print_budget(budget, c))
    assert_readable(out, [r.run_id for r in runs] + [PARTNERS[0], DATASET, "3.250", "6.750",
                                                     "1.234"])


def test_the_demos_budget_table_fits_80_columns() -> None:
    from sangsaeng.demo.run import print_budgets

    budgets = [DatasetBudget(partner=p, dataset=DATASET, cap=10, delta=1e-5, spent=2.5,
                             remaining=7.5, runs=[RunSpend(run_id=FLOWER_RUN, rounds=3,
                                                           committed=3, epsilon=1.25)])
               for p in PARTNERS]
    out = rendered(lambda c: print_budgets(budgets, FLOWER_RUN, c))
    assert_readable(out, [*PARTNERS, "1.25", "2.50", "7.50"])
    assert all(any(p in line and "7.50" in line for line in out.splitlines()) for p in PARTNERS)


def entry(name: str = DATASET) -> DatasetEntry:
    return DatasetEntry.model_validate({
        "name": name, "description": "Policyholders of a caravan insurer, one row each, "
                                     "with the customer's socio-demographic profile",
        "features": [{"name": "average_household_size_in_postcode", "min": 1, "max": 6},
                     {"kind": "categorical", "name": "customer_main_type_lifestyle_segment",
                      "categories": ["successful hedonists", "driven growers",
                                     "average family", "career loners"]},
                     {"kind": "text", "name": "free_text_complaint_description"}],
        "target": {"name": "holds_caravan_insurance_policy", "classes": ["no", "yes"]},
        "partners": 3, "rows": 581_234})


def test_the_catalogue_fits_80_columns() -> None:
    entries = [entry(), entry("caravan")]
    out = rendered(lambda c: print_catalogue(entries, c))
    assert_readable(out, [DATASET, "caravan", "holds_caravan_insurance_policy", "581,200",
                          "3"])


def test_a_dataset_fits_80_columns() -> None:
    out = rendered(lambda c: print_dataset(entry(), c))
    assert_readable(out, [DATASET, "581,200", "average_household_size_in_postcode",
                          "customer_main_type_lifestyle_segment", "successful hedonists",
                          "free_text_complaint_description", "holds_caravan_insurance_policy",
                          "1 – 6", "text", "categorical"])


def test_a_table_too_wide_for_any_layout_becomes_records() -> None:
    table = Table("partner", "task sha256", "the model's sha256")
    for column in table.columns:
        column.no_wrap = True
    table.add_row(PARTNERS[0], SHA, SHA[::-1])
    out = rendered(lambda c: print_table(c, table))
    assert_readable(out, [f"partner: {PARTNERS[0]}", SHA, SHA[::-1]])
    assert "\n  the model's sha256:\n    " + SHA[::-1] in out  # too long to follow it


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    yield url


def admin(url: str, *args: str) -> str:
    result = sangsaeng("admin", *args, "--store-url", url, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_operators_lists_fit_80_columns(store: str, tmp_path: Path) -> None:
    s = Store(store)
    signing = "MCowBQYDK2VwAyEAq1Z4bJx9mV7cR2tYwE5nU8pL3kH0sA6fG9dJ1iO4zXc="[-44:]
    node = create_node_key(tmp_path / "node")
    s.partners.put(PARTNERS[0], signing, node)
    s.partners.set_node_id(PARTNERS[0], FLOWER_RUN)
    s.partners.put(PARTNERS[1], signing[::-1])
    s.catalogue.put(DATASET, entry().model_dump_json())
    for name, tenant in [("Acme Predictive Analytics — Seoul ML platform team", OWNER),
                         ("Financial Supervisory Service audit", None)]:
        admin(store, "token", "create", "--role", "startup" if tenant else "auditor",
              "--name", name, *(["--tenant", tenant] if tenant else []))
    admin(store, "token", "revoke", "1")

    tokens = admin(store, "token", "list")
    assert_readable(tokens, [OWNER, "startup", "auditor", "Seoul", "Financial"])
    assert tokens.count(dt.date.today().isoformat()) >= 3  # created twice, revoked once
    datasets = admin(store, "dataset", "list")
    assert_readable(datasets, [DATASET, "holds_caravan_insurance_policy", "581200"])
    partners = admin(store, "partner", "list")
    assert_readable(partners, [*PARTNERS[:2], signing, signing[::-1], node[-16:], FLOWER_RUN])
