"""The catalogue: datasets' schemas and rounded sizes, never rows."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from sangsaeng.shared.rest.catalogue import DatasetEntry

from ..api import ApiProblem
from ..pages import VisitorDep, render

router = APIRouter()


@router.get("/catalogue")
async def catalogue(visitor: VisitorDep) -> HTMLResponse:
    datasets = [DatasetEntry.model_validate(d) for d in await visitor.api.get("/datasets")]
    return render("catalogue.html", visitor, datasets=datasets)


@router.get("/catalogue/{name}")
async def dataset(name: str, visitor: VisitorDep) -> HTMLResponse:
    try:
        entry = DatasetEntry.model_validate(
            await visitor.api.get(f"/datasets/{quote(name, safe='')}"))
    except ApiProblem as err:
        return render("problem.html", visitor, err.status, title="No such dataset",
                      message=err.message)
    return render("dataset.html", visitor, entry=entry)
