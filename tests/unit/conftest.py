"""The store's tests here run on SQLite; tests/integration/test_store_postgres.py runs the
same tests on PostgreSQL by giving these two fixtures a server's databases instead."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def new_database(tmp_path: Path) -> Callable[[], str]:
    """Makes the URL of a new, empty database each time it is called."""
    numbers = itertools.count(1)
    return lambda: f"sqlite:///{tmp_path / f'store-{next(numbers)}.db'}"


@pytest.fixture
def store_url(new_database: Callable[[], str]) -> str:
    return new_database()
