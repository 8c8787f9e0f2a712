"""Operator settings, in one place. Read from the environment so the ServerApp process
(started by the SuperLink) sees the same values as the command that started the SuperLink."""

from __future__ import annotations

import os
from pathlib import Path

STORE_URL_ENV = "SANGSAENG_STORE_URL"
STORE_URL_FILE_ENV = "SANGSAENG_STORE_URL_FILE"  # a file holding the URL (a secret)
# How the ServerApp knows which partner a reply is from: "keys" (the default), the partner
# whose registered node key the SuperLink authenticated; "reported", the name the node
# reports itself, only for SuperLinks without node authentication (tests, simulation).
NODE_IDENTITY_ENV = "SANGSAENG_NODE_IDENTITY"


def store_url() -> str:
    """SQLAlchemy URL of the coordinator's store; SQLite under ~/.sangsaeng by default."""
    if path := os.environ.get(STORE_URL_FILE_ENV):
        return Path(path).read_text().strip()
    default = Path.home() / ".sangsaeng" / "sangsaeng.db"
    return os.environ.get(STORE_URL_ENV) or f"sqlite:///{default}"


def nodes_authenticated() -> bool:
    return os.environ.get(NODE_IDENTITY_ENV, "keys") != "reported"
