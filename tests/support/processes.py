"""The processes this test session started, told apart from anything else on the machine.

tests/conftest.py puts a tag unique to the session in the environment; every process a
test starts (a CLI, a SuperLink, the SuperExec, ServerApp and ClientApp processes Flower
starts in turn) inherits it. A check that "no Flower process is left" looks only at
tagged processes, so a SuperNode someone runs elsewhere on the machine changes nothing.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sangsaeng.server.deployment.flower_processes import running_processes

TAG_ENV = "SANGSAENG_TEST_SESSION"
FLOWER_PROGRAMS = {"flower-superlink", "flower-supernode", "flower-superexec", "flwr-serverapp",
                   "flwr-clientapp"}


def tag_this_session() -> None:
    os.environ.setdefault(TAG_ENV, uuid.uuid4().hex)


def ours() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every running process this session started, directly or not."""
    tag = f"{TAG_ENV}={os.environ[TAG_ENV]}".encode()
    found = []
    for pid, argv in running_processes():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if tag in environ:
            found.append((pid, argv))
    return found


def flower_processes() -> list[str]:
    """Command lines of the Flower processes this session started that still run (tests
    run one deployment at a time, so after one stops there must be none)."""
    return [" ".join(argv) for _, argv in ours()
            if any(Path(arg).name in FLOWER_PROGRAMS for arg in argv[:2])]
