"""The Flower App Bundle (FAB) the SuperLink ships to every SuperNode.

Deliberately thin: two one-line entry points into the `sangsaeng` release that each
partner installed itself, so the training, validation and accounting code a partner
runs is its own copy, never code sent by the coordinator.
"""

from __future__ import annotations

import hashlib

from flwr.cli.build import build_fab_from_files

from sangsaeng import __version__

PYPROJECT = f"""\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "sangsaeng-fab"
version = "{__version__}"
description = "Entry points into the partner-installed sangsaeng package"
license = "Apache-2.0"
dependencies = ["flwr==1.42.0", "sangsaeng=={__version__}"]

[tool.flwr.app]
publisher = "sangsaeng"

[tool.flwr.app.components]
serverapp = "sangsaeng_fab.server_app:app"
clientapp = "sangsaeng_fab.client_app:app"

[tool.flwr.app.config]
task = ""  # the TaskSpec as JSON, set per run
sangsaeng-run = 0  # the coordinator store's run id, set per run
"""

FILES = {
    "pyproject.toml": PYPROJECT.encode(),
    "sangsaeng_fab/__init__.py": b"",
    "sangsaeng_fab/server_app.py": b"from sangsaeng.server.server_app import app  # noqa: F401\n",
    "sangsaeng_fab/client_app.py": b"from sangsaeng.client.client_app import app  # noqa: F401\n",
}


def build_fab() -> tuple[bytes, str]:
    """The FAB as bytes and its sha256 (deterministic: Flower fixes the zip dates)."""
    fab, _ = build_fab_from_files(FILES)
    return fab, hashlib.sha256(fab).hexdigest()
