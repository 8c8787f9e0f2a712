"""`sangsaeng catalogue list/show` against a real API server: what a startup sees of the
catalogue (schemas, partners, rounded sizes), readable at 80 columns, and an unknown
dataset named in a clear refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.api import create_app
from sangsaeng.server.db import Store
from sangsaeng.server.deployment.flower_processes import free_port
from sangsaeng.server.deployment.listeners import Listener, Services
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.shared.rest.catalogue import DatasetEntry

from ..support.cli import sangsaeng
from ..support.records import register_caravan

LONG = "caravan-insurance-policyholders-2026-q4-seoul-metropolitan"
TARGET = "holds_caravan_insurance_policy_at_renewal"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The API on a store with two catalogue entries (no SuperLink: browsing the catalogue
    needs none), and a startup's token in the environment."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('catalogue') / 'store.db'}")
    register_caravan(store)
    store.catalogue.put(LONG, DatasetEntry.model_validate({
        "name": LONG, "description": "Policyholders of a caravan insurer, with the "
                                     "customer's socio-demographic profile",
        "features": [{"name": "average_household_size_in_postcode", "min": 1, "max": 6,
                      "missing": 2},
                     {"kind": "categorical", "name": "customer_main_type_lifestyle_segment",
                      "categories": ["successful hedonists", "driven growers", 7]}],
        "target": {"name": TARGET, "classes": ["no", "yes"]},
        "partners": 4, "rows": 1_234_567}).model_dump_json())
    token = create_token(store, "acme-ml", Role.STARTUP, "acme")
    listener = Listener(create_app(store, FlowerControl("127.0.0.1:9")), "127.0.0.1",
                        free_port())
    with Services([listener]):
        yield listener.url, {"SANGSAENG_TOKEN": token, "COLUMNS": "80"}


def readable(out: str, *values: str) -> None:
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "…" not in out, out
    assert [v for v in values if v not in out] == [], out


def test_list_shows_every_dataset_at_80_columns(api: tuple[str, dict[str, str]]) -> None:
    url, env = api
    result = sangsaeng("catalogue", "list", "--api-url", url, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    readable(result.stdout, "caravan", LONG, TARGET, "1,234,600", "5,800", "4")


def test_show_gives_the_schema_never_rows(api: tuple[str, dict[str, str]]) -> None:
    url, env = api
    result = sangsaeng("catalogue", "show", LONG, "--api-url", url, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    readable(result.stdout, LONG, "held by 4 partner(s)", "about 1,234,600 rows",
             "average_household_size_in_postcode", "1 – 6, missing → 2",
             "customer_main_type_lifestyle_segment", "successful hedonists", "driven growers",
             f"target: {TARGET}, classes: no, yes")


def test_an_unknown_dataset_is_named(api: tuple[str, dict[str, str]]) -> None:
    url, env = api
    result = sangsaeng("catalogue", "show", "caravan-typo", "--api-url", url, env=env)
    assert result.returncode == 1
    assert "no dataset 'caravan-typo' in the catalogue" in result.stdout + result.stderr


def test_without_a_token_it_says_so(api: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, _ = api
    result = sangsaeng("catalogue", "list", "--api-url", url, env={"SANGSAENG_TOKEN": ""})
    assert result.returncode == 2 and "no API token" in result.stdout + result.stderr
    bad = tmp_path / "token"
    bad.write_text("not-a-token")
    result = sangsaeng("catalogue", "list", "--api-url", url, "--token-file", str(bad))
    assert result.returncode == 1 and "401" in result.stdout + result.stderr
