"""The operator's API bodies: API tokens, partners' keys and the catalogue (whose entries
are shared.rest.catalogue.DatasetEntry). A token's secret appears only in TokenCreated,
once; listings carry neither it nor its hash."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .catalogue import not_dot_segment

# Names end up in the store's text columns and the audit log: control characters (NUL
# above all, which PostgreSQL refuses) have no place in them.
# A partner's name is a path segment of the endpoints and pages that remove it.
PARTNER_NAME = r"^[^\x00-\x1f\x7f/\\]+$"  # and not '.' or '..' (a validator: no look-ahead)
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str = Field(description="who holds it")
    role: Literal["admin", "startup", "auditor"]  # server.accounts.Role
    tenant: str | None = Field(description="the startup tenant; none for other roles")
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=PRINTABLE,
                      description="who holds it (for the operator's records)")
    role: Literal["admin", "startup", "auditor"]
    tenant: str | None = Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE,
                               description="required for a startup token, refused for others")


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token: shown this once, only its hash is kept")


class PartnerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    public_key: str = Field(description="Ed25519 key its ledger exports are signed with "
                                        "(base64 of the 32 raw bytes)")
    node_key: str | None = Field(description="OpenSSH public key its SuperNode authenticates "
                                             "with; none: its node cannot join runs")
    node_id: str | None = Field(description="the SuperLink's id for that node key, once "
                                            "registered there")
    registered_at: dt.datetime
    removed_at: dt.datetime | None


class PartnerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=PARTNER_NAME,
                      description="the partner's name, as in its policy file (no '/' or "
                                  "'\\', not '.' or '..': it names pages and endpoints)")
    public_key: str = Field(max_length=200, description="as `sangsaeng client key show` "
                                                        "prints it")
    node_key: str | None = Field(default=None, max_length=4000, description="as `sangsaeng "
                                 "client node-key show` prints it (OpenSSH line or PEM)")
    replace: bool = Field(default=False, description="replace the keys of a registered "
                                                     "partner")

    @field_validator("name")
    @classmethod
    def _segment(cls, name: str) -> str:
        return not_dot_segment(name)
