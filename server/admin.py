"""What the operator changes — API tokens, partners' keys, the dataset catalogue — with the
checks and the audit log's description of each change, once for both `sangsaeng admin ...`
and the admin API. Each change checks everything before it writes: a refused one leaves
the store as it was. Descriptions name what changed, never a token."""

from __future__ import annotations

import base64
import hashlib
import re

from sangsaeng.shared.node_keys import parse_node_key
from sangsaeng.shared.rest.admin import PARTNER_NAME
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.signing import parse_public_key

from .accounts import Role, create_token, token_sha256
from .db import Store
from .db.tables import MAX_ID, ApiToken, Partner


class NotFound(LookupError):
    """No such live token, registered partner or catalogue entry (the message says which)."""


class BadName(ValueError):
    """A name that cannot be a path segment of the pages and endpoints that address it."""


class AlreadyRegistered(ValueError):
    """The partner is registered and its keys were not to be replaced."""


def issue_token(store: Store, name: str, role: Role,
                tenant: str | None = None) -> tuple[ApiToken, str]:
    """A new token's record and the token itself (to show once). ValueError if the tenant
    does not fit the role (accounts.create_token)."""
    token = create_token(store, name, role, tenant)
    row = store.tokens.by_sha256(token_sha256(token))
    assert row is not None  # just added
    return row, token


def revoke_token(store: Store, token_id: int) -> ApiToken:
    """Revoke a live token (it stops working at once) and return its record."""
    # ids past MAX_ID name nothing, and would fail PostgreSQL's 32-bit column
    if not 0 < token_id <= MAX_ID or not store.tokens.revoke(token_id):
        raise NotFound(f"no live token {token_id}")
    row = store.tokens.get(token_id)
    assert row is not None
    return row


def token_detail(row: ApiToken) -> str:
    return (f"token {row.id} '{row.name}', role {row.role}"
            + (f", tenant {row.tenant}" if row.tenant else ""))


def register_partner(store: Store, name: str, public_key: str, node_key: str | None = None,
                     replace: bool = False) -> Partner:
    """Register (or, with `replace`, re-key) a partner; its registered record.

    SigningKeyError: `public_key` is not an Ed25519 public key; NodeKeyError: `node_key`
    (an OpenSSH line or PEM, as `sangsaeng client node-key show` prints it) is not a node
    key; AlreadyRegistered; db.partners.PartnerKeyTaken: another partner has the node key, or it was
    revoked."""
    if not re.fullmatch(PARTNER_NAME, name) or name in (".", ".."):
        raise BadName(f"partner name {name!r}: no control characters, '/' or '\\', and not "
                      "'.' or '..' (it names pages and endpoints)")
    parse_public_key(public_key)
    node = parse_node_key(node_key) if node_key else None
    if not store.partners.put(name, public_key, node, replace=replace):
        raise AlreadyRegistered(f"partner '{name}' is registered; replace it to change its "
                                "keys")
    row = store.partners.get(name)
    assert row is not None
    return row


def remove_partner(store: Store, name: str) -> Partner:
    """Cut a partner off: its node is refused from its next request on (the API's
    background task unregisters it from the SuperLink). Its records and keys stay."""
    if not store.partners.remove(name):
        raise NotFound(f"no registered partner '{name}'")
    row = store.partners.get(name)
    assert row is not None
    return row


def partner_detail(row: Partner) -> str:
    node = f"node key {fingerprint(row.node_key)}" if row.node_key else "no node key"
    return f"partner '{row.name}', signing key {fingerprint(row.public_key)}, {node}"


def fingerprint(key: str) -> str:
    """SHA256:<base64> of a key's bytes: for a node key (an OpenSSH line) exactly what
    `ssh-keygen -l` prints; for a signing key, of its 32 raw bytes."""
    blob = key.split()[1] if " " in key else key
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def put_dataset(store: Store, entry: DatasetEntry) -> bool:
    """Add a catalogue entry, or replace the one of that name; True if it replaced one."""
    replaced = store.catalogue.get(entry.name) is not None
    store.catalogue.put(entry.name, entry.model_dump_json())
    return replaced


def remove_dataset(store: Store, name: str) -> DatasetEntry:
    """Take a dataset out of the catalogue (new runs cannot name it; runs started on it
    carry their own task) and return its entry."""
    row = store.catalogue.get(name)
    if row is None or not store.catalogue.remove(name):
        raise NotFound(f"no dataset '{name}' in the catalogue")
    return DatasetEntry.model_validate_json(row.entry_json)


def dataset_detail(entry: DatasetEntry) -> str:
    return (f"dataset '{entry.name}': {len(entry.features)} features, target "
            f"{entry.target.name}, ~{entry.rows} rows over {entry.partners} partners")
