"""Operator settings, in one place. Read from the environment so the ServerApp process
(started by the SuperLink) sees the same values as the command that started the SuperLink."""

from __future__ import annotations

import os
from pathlib import Path

STORE_URL_ENV = "SANGSAENG_STORE_URL"


def store_url() -> str:
    """SQLAlchemy URL of the coordinator's store; SQLite under ~/.sangsaeng by default."""
    default = Path.home() / ".sangsaeng" / "sangsaeng.db"
    return os.environ.get(STORE_URL_ENV) or f"sqlite:///{default}"
