"""The store's tests, and its revisions', on PostgreSQL: the very tests of tests/unit/
test_store.py and tests/unit/test_migrations.py, each on a database of its own on the
session's server (the `postgres` fixture)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..support.postgres import PostgresServer
from ..unit.test_migrations import (  # noqa: F401  (collected here again)
    test_a_schema_change_that_fails_leaves_nothing_behind,
    test_every_revision_goes_back_down,
    test_the_revisions_build_what_the_tables_declare,
)
from ..unit.test_store import (  # noqa: F401  (collected here again)
    test_a_partner_reports_once_per_round,
    test_a_run_is_bound_to_one_flower_run_while_open,
    test_a_store_behind_head_is_refused_until_upgraded,
    test_a_store_from_before_migrations_is_upgraded_with_its_records,
    test_a_store_of_a_newer_release_is_refused,
    test_an_empty_database_is_created_at_the_head_revision,
    test_privacy_records_and_the_audit_log_are_append_only,
    test_round_rows_merge_and_runs_close,
    test_run_ids_are_never_reused,
    test_stores_no_release_can_upgrade_are_refused,
)


@pytest.fixture
def new_database(postgres: PostgresServer) -> Callable[[], str]:
    return postgres.database


@pytest.fixture
def store_url(postgres: PostgresServer) -> str:
    return postgres.database()
