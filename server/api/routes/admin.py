"""/admin: the operator's changes through the API — tokens, partners' keys, the catalogue —
with the same checks as `sangsaeng admin ...` (both call server/admin.py). Each change's
audit log entry says what changed (request_log.DETAIL_KEY), never a token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status

from sangsaeng.server import admin
from sangsaeng.server.accounts import Role
from sangsaeng.server.db.partners import PartnerKeyTaken
from sangsaeng.shared.node_keys import NodeKeyError
from sangsaeng.shared.rest.admin import (
    PRINTABLE,
    PartnerCreate,
    PartnerOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
)
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.service import Problem, Unprocessable
from sangsaeng.shared.signing import SigningKeyError

from ..deps import StoreDep, allow, documented, unprocessable
from ..request_log import DETAIL_KEY

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[allow(Role.ADMIN)],
                   responses=documented(401, 403))

PartnerName = Annotated[str, Path(max_length=200, pattern=PRINTABLE)]
DatasetName = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


def _unprocessable(description: str) -> dict[int | str, dict[str, Any]]:
    return {422: {"model": Unprocessable, "description": description}}


def _changed(request: Request, detail: str) -> None:
    setattr(request.state, DETAIL_KEY, detail)


@router.get("/tokens")
def list_tokens(store: StoreDep) -> list[TokenOut]:
    """Every API token, revoked ones too: who holds it, its role and tenant (never the
    token, nor its hash)."""
    return [TokenOut.model_validate(t) for t in store.tokens.list()]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated,
             responses=_unprocessable("each bad field; a startup token needs a tenant, "
                                      "the other roles take none"))
def create_token(body: TokenCreate, request: Request, store: StoreDep) -> Any:
    """Create a token. The answer shows it this once: only its hash is kept."""
    try:
        row, token = admin.issue_token(store, body.name, Role(body.role), body.tenant)
    except ValueError as err:
        return unprocessable([(("body", "tenant"), str(err), "value_error")])
    _changed(request, f"created {admin.token_detail(row)}")
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=token)


@router.post("/tokens/{token_id}/revoke",
             responses={404: _problem("no such token, or it is revoked already")})
def revoke_token(token_id: int, request: Request, store: StoreDep) -> TokenOut:
    """Revoke a token: it stops working at once."""
    try:
        row = admin.revoke_token(store, token_id)
    except admin.NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    _changed(request, f"revoked {admin.token_detail(row)}")
    return TokenOut.model_validate(row)


@router.get("/partners")
def list_partners(store: StoreDep) -> list[PartnerOut]:
    """Every partner, removed ones too: its signing key, its node key and node id."""
    return [PartnerOut.model_validate(p) for p in store.partners.list()]


@router.post("/partners", status_code=status.HTTP_201_CREATED, response_model=PartnerOut,
             responses={409: _problem("registered already (and not to be replaced), or "
                                      "its node key is another partner's or revoked"),
                        **_unprocessable("each bad field, a key that is not one included")})
def register_partner(body: PartnerCreate, request: Request, store: StoreDep) -> Any:
    """Register a partner's keys: its node is let in by its node key (within seconds, if
    it is running), and its ledger exports are checked against its signing key."""
    try:
        row = admin.register_partner(store, body.name, body.public_key, body.node_key,
                                     body.replace)
    except SigningKeyError as err:
        return unprocessable([(("body", "public_key"), str(err), "signing_key")])
    except NodeKeyError as err:
        return unprocessable([(("body", "node_key"), str(err), "node_key")])
    except (admin.AlreadyRegistered, PartnerKeyTaken) as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    _changed(request, f"registered {admin.partner_detail(row)}")
    return PartnerOut.model_validate(row)


@router.post("/partners/{name}/remove",
             responses={404: _problem("no such partner, or it is removed already")})
def remove_partner(name: PartnerName, request: Request, store: StoreDep) -> PartnerOut:
    """Cut a partner off: its node is refused within seconds. Its records and keys stay,
    so what it did remains verifiable."""
    try:
        row = admin.remove_partner(store, name)
    except admin.NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    _changed(request, f"removed {admin.partner_detail(row)}")
    return PartnerOut.model_validate(row)


@router.post("/datasets", status_code=status.HTTP_201_CREATED,
             responses=_unprocessable("each bad field of the entry"))
def put_dataset(entry: DatasetEntry, request: Request, store: StoreDep) -> DatasetEntry:
    """Add a catalogue entry, or replace the one of its name (schema and rounded size, as
    agreed with the partners holding the data)."""
    replaced = admin.put_dataset(store, entry)
    _changed(request, f"{'replaced' if replaced else 'added'} {admin.dataset_detail(entry)}")
    return entry


@router.post("/datasets/{name}/remove",
             responses={404: _problem("no such dataset in the catalogue")})
def remove_dataset(name: DatasetName, request: Request, store: StoreDep) -> DatasetEntry:
    """Take a dataset out of the catalogue: new runs cannot name it; runs started on it
    go on (each carries its own task), and its privacy records stay."""
    try:
        entry = admin.remove_dataset(store, name)
    except admin.NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    _changed(request, f"removed {admin.dataset_detail(entry)}")
    return entry
