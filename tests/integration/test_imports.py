"""What a fresh interpreter loads when a role imports only what it needs: each check runs
in a Python process of its own, so nothing another test imported counts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded(code: str, packages: tuple[str, ...]) -> list[str]:
    """The top-level packages among `packages` that `code` leaves in sys.modules."""
    probe = (f"import json, sys\n{code}\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} "
             f"& {set(packages)!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    return list(json.loads(out.stdout))


def test_the_accountant_does_not_load_opacus_training_stack() -> None:
    """Flower starts a ClientApp process per message: Opacus' package import (~1.3 s)
    would be paid on every round."""
    code = ("from sangsaeng.shared.accounting import epsilon, Mechanism\n"
            "epsilon([Mechanism(noise_multiplier=1, sample_rate=0.1, steps=5)], 1e-5)")
    assert loaded(code, ("opacus", "torch")) == []


SERVER_SIDE = ("fastapi", "starlette", "sqlalchemy", "flwr", "grpc", "torch", "uvicorn")


@pytest.mark.parametrize("module", ["sangsaeng.api_client", "sangsaeng.shared.rest.runs",
                                    "sangsaeng.shared.rest.audit", "sangsaeng.audit.fetch"])
def test_the_http_clients_load_nothing_of_the_server(module: str) -> None:
    """A startup's script (or an auditor's) that imports the API client gets httpx and the
    REST schemas, not the coordinator's frameworks."""
    assert loaded(f"import {module}", SERVER_SIDE) == []


def test_the_check_sees_what_is_loaded() -> None:
    """The probe itself: importing the coordinator's API does load them."""
    assert set(loaded("import sangsaeng.server.api", SERVER_SIDE)) >= {
        "fastapi", "starlette", "sqlalchemy", "flwr"}
