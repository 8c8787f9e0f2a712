"""The store every coordinator in these tests runs on: each module that asks for
`store_url` runs twice, once on SQLite and once on PostgreSQL (the session's server), with
one store per module and backend, so a module sets up its coordinator once per backend."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    return str(request.getfixturevalue("postgres").database())
