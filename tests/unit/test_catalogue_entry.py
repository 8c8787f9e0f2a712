"""Catalogue entries: the partners a dataset names as its holders must be the ones it
counts; entries stored before holders existed still load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sangsaeng.shared.rest.catalogue import DatasetEntry

from ..support.records import TASK


def entry(**changes: object) -> DatasetEntry:
    fields: dict[str, object] = {"name": "caravan", "features": TASK.features,
                                 "target": TASK.target, "partners": 2, "rows": 1234}
    return DatasetEntry.model_validate(fields | changes)


def test_holders_are_counted_by_partners() -> None:
    assert entry(holders=["hanbit-bank", "daehan-insurance"]).holders == [
        "hanbit-bank", "daehan-insurance"]
    with pytest.raises(ValidationError, match="names 1 distinct partners, 'partners' counts 2"):
        entry(holders=["hanbit-bank", "hanbit-bank"])
    with pytest.raises(ValidationError, match="holders"):
        entry(holders=["bad\nname", "x"])


def test_an_entry_stored_before_holders_loads_without_them() -> None:
    stored = entry().model_dump_json(exclude={"holders"})
    assert "holders" not in stored
    assert DatasetEntry.model_validate_json(stored).holders == []
