"""/datasets: the catalogue startups browse (schemas and rounded sizes, never rows)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from sangsaeng.shared.rest.catalogue import DatasetEntry

from ..deps import EVERYONE, StoreDep, allow, documented

router = APIRouter(tags=["catalogue"], dependencies=[allow(*EVERYONE)])


@router.get("/datasets", responses=documented(401))
def list_datasets(store: StoreDep) -> list[DatasetEntry]:
    """Every dataset partners offer: schema and rounded size, never rows."""
    return [DatasetEntry.model_validate_json(d.entry_json) for d in store.catalogue.list()]


@router.get("/datasets/{name}", responses=documented(401, 404))
def get_dataset(name: str, store: StoreDep) -> DatasetEntry:
    row = store.catalogue.get(name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset '{name}' in the catalogue")
    return DatasetEntry.model_validate_json(row.entry_json)
