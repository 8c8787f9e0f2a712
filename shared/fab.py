"""The Flower App Bundle (FAB) the coordinator's SuperLink ships to every SuperNode.

Deliberately thin: two one-line entry points into the `sangsaeng` release. It is
deterministic, so a partner builds the same bytes from its own install and accepts only
runs whose FAB has that sha256 (client/launcher.py); even then it imports no module of the
FAB but runs its own installed ClientApp.
"""

from __future__ import annotations

import hashlib
import json

from flwr.cli.build import build_fab_from_files

from sangsaeng import __version__
from sangsaeng.shared.wire import RUN_CONFIG_DEFAULTS

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
"""
# The run config's keys and defaults (JSON strings and numbers are valid TOML values).
PYPROJECT += "".join(f"{key} = {json.dumps(value)}\n" for key, value in RUN_CONFIG_DEFAULTS.items())

ENTRY_POINT = "from {module} import app  # noqa: F401\n"
FILES = {
    "pyproject.toml": PYPROJECT.encode(),
    "sangsaeng_fab/__init__.py": b"",
    "sangsaeng_fab/server_app.py": ENTRY_POINT.format(
        module="sangsaeng.server.flower.server_app").encode(),
    "sangsaeng_fab/client_app.py": ENTRY_POINT.format(
        module="sangsaeng.client.client_app").encode(),
}


def build_fab() -> tuple[bytes, str]:
    """The FAB as bytes and its sha256 (deterministic: Flower fixes the zip dates)."""
    fab, _ = build_fab_from_files(FILES)
    return fab, hashlib.sha256(fab).hexdigest()
