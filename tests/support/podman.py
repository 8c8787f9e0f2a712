"""podman for the container tests: its configuration, one call, and a container that is
always removed."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The security options every deployment file gives our containers (compose.yaml, k8s/):
# the root filesystem read-only (and no tmpfs but /tmp), no capabilities, no escalation.
HARDENED = ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def environment(workdir: Path) -> dict[str, str]:
    """The environment for podman: unless CONTAINERS_CONF names a configuration already,
    one with runc (crun fails on some hosts' cgroup layout) and ulimits no higher than
    this process's (podman's defaults exceed them on such hosts)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make test-containers` installs it (apt)")
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        conf = workdir / "containers.conf"
        conf.write_text("[containers]\n"
                        f'default_ulimits = ["nofile={_limit(resource.RLIMIT_NOFILE, 20000)}", '
                        f'"nproc={_limit(resource.RLIMIT_NPROC, 4096)}"]\n'
                        '[engine]\nruntime = "runc"\n')
        env["CONTAINERS_CONF"] = str(conf)
    return env


def _limit(which: int, cap: int) -> str:
    soft, _ = resource.getrlimit(which)
    value = cap if soft == resource.RLIM_INFINITY else min(soft, cap)
    return f"{value}:{value}"


def podman(env: dict[str, str], *args: str, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {result.returncode}\n"
                             f"{result.stdout}{result.stderr}")
    return result


@contextmanager
def volume(env: dict[str, str]) -> Iterator[str]:
    name = f"sangsaeng-test-{uuid.uuid4().hex[:8]}"
    podman(env, "volume", "create", name)
    try:
        yield name
    finally:
        podman(env, "volume", "rm", "--force", name, check=False)


@contextmanager
def container(env: dict[str, str], *run_args: str) -> Iterator[str]:
    """`podman run -d RUN_ARGS` under a fresh name; removed (stopped first) on exit."""
    name = f"sangsaeng-test-{uuid.uuid4().hex[:8]}"
    podman(env, "run", "-d", "--name", name, *run_args)
    try:
        yield name
    finally:
        podman(env, "rm", "--force", "--time", "10", name, check=False, timeout=60)
