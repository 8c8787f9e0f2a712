"""/models: startups upload the base models their runs start from, and list them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from sangsaeng.server import base_models
from sangsaeng.server.accounts import Account, Role
from sangsaeng.shared.models import MAX_WEIGHTS_BYTES, WeightsMismatch
from sangsaeng.shared.rest.base_models import BaseModelOut
from sangsaeng.shared.rest.service import Problem, Unprocessable

from ..deps import StoreDep, allow, documented, unprocessable
from ..request_log import DETAIL_KEY

router = APIRouter()


@router.post("/models", tags=["models"], status_code=status.HTTP_201_CREATED,
             responses={**documented(401, 403),
                        409: {"model": Problem, "description": "the account keeps as many "
                                                               "base models as it may"},
                        413: {"description": f"over {MAX_WEIGHTS_BYTES} bytes"},
                        422: {"model": Unprocessable, "description": "not safetensors"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string",
                                                         "format": "binary"}}}}})
async def upload_model(request: Request, store: StoreDep,
                       account: Annotated[Account, allow(Role.STARTUP)]) -> Any:
    """Upload base weights (a safetensors file, the trained parameters of a registry
    model) as the request body. Answers their sha256 — name it as a task's `base_model` —
    and their tensors; the run checks them against its task's architecture."""
    body = bytearray()
    async for chunk in request.stream():  # never more than the limit in memory
        body += chunk
        if len(body) > MAX_WEIGHTS_BYTES:
            return unprocessable([(("body",), f"base model is over the limit of "
                                              f"{MAX_WEIGHTS_BYTES} bytes", "too_large")],
                                 status.HTTP_413_CONTENT_TOO_LARGE)
    try:
        record = await run_in_threadpool(base_models.register, store, account.tenant,
                                         bytes(body))
    except WeightsMismatch as err:
        return unprocessable([(("body",), str(err), "weights")])
    except base_models.QuotaReached as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    setattr(request.state, DETAIL_KEY, f"base model {record.sha256[:12]}")
    return BaseModelOut.model_validate(record)


@router.get("/models", tags=["models"], responses=documented(401, 403))
def list_models(store: StoreDep, account: Annotated[Account, allow(Role.STARTUP)]
                ) -> list[BaseModelOut]:
    """The base models this startup uploaded."""
    return [BaseModelOut.model_validate(r) for r in store.base_models.list(account.tenant)]
