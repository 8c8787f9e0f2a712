"""The coordinator's image, built by deploy/build-images.sh and run as the deploy files run
it: after the migration command, it becomes ready with a read-only root filesystem, as its
non-root user, with no capabilities. Slow (the first build takes minutes; later ones reuse
the base and the dependency layer): `make test-containers` runs it, `make test` does not."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ..support import deploy_files as files
from ..support.cli import sangsaeng
from ..support.podman import HARDENED, container, environment, podman, volume

pytestmark = pytest.mark.container

IMAGE = f"sangsaeng-coordinator:{files.release()}"
UID = 10001
STATE = "/var/lib/sangsaeng"
READY_SECONDS = 180.0
BUILD_SECONDS = 3600


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return environment(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    log = tmp_path_factory.mktemp("build") / "build.log"
    with log.open("w") as out:
        result = subprocess.run([str(files.DEPLOY / "build-images.sh")],
                                env={**env, "ENGINE": "podman"}, stdout=out,
                                stderr=subprocess.STDOUT, timeout=BUILD_SECONDS)
    assert result.returncode == 0, log.read_text()[-5000:]
    return IMAGE


def secrets(directory: Path) -> Path:
    """The files the deploy files mount at /run/secrets (the server's certificate for
    127.0.0.1 and its CA; a SQLite store on the state volume, as this test runs no
    PostgreSQL), owned by the image's user and readable by it only. The CA's key stays
    out, as deploy/README.md says."""
    made = sangsaeng("admin", "certificates", "--out", str(directory), "--host", "localhost")
    assert made.returncode == 0, made.stdout + made.stderr
    (directory / "ca.key").rename(directory.parent / "ca.key")
    (directory / "store-url").write_text(f"sqlite:///{STATE}/store.db\n")
    for path in [directory, *directory.iterdir()]:
        os.chown(path, UID, UID)
        path.chmod(0o700 if path.is_dir() else 0o400)
    return directory


def await_healthy(env: dict[str, str], name: str) -> float:
    """Seconds until the image's HEALTHCHECK (the readiness command) passes."""
    start = time.monotonic()
    while time.monotonic() - start < READY_SECONDS:
        state = podman(env, "inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if state != "true":
            logs = podman(env, "logs", name)
            pytest.fail(f"the coordinator exited:\n{logs.stdout}{logs.stderr}")
        if podman(env, "healthcheck", "run", name, check=False, timeout=60).returncode == 0:
            return time.monotonic() - start
        time.sleep(1)
    logs = podman(env, "logs", name)
    pytest.fail(f"not healthy in {READY_SECONDS:g} s:\n{logs.stdout}{logs.stderr}")


def probes() -> list[list[str]]:
    """The exec probes of the coordinator's Deployment (deploy/k8s)."""
    [deployment] = [d for d in files.manifests() if d["kind"] == "Deployment"]
    [container] = files.pod_spec(deployment)["containers"]
    return [container[p]["exec"]["command"]
            for p in ("startupProbe", "livenessProbe", "readinessProbe")]


def test_the_coordinator_becomes_ready_read_only_as_non_root(
        env: dict[str, str], image: str, tmp_path: Path) -> None:
    mounts = ["--volume", f"{secrets(tmp_path / 'secrets')}:/run/secrets:ro",
              "--env", "SANGSAENG_STORE_URL_FILE=/run/secrets/store-url"]
    with volume(env) as state:
        mounts += ["--volume", f"{state}:{STATE}"]
        # the migration Job's and compose service's command first: the server refuses a
        # store behind the head revision
        podman(env, "run", "--rm", *HARDENED, *mounts, image, "admin", "store", "upgrade",
               timeout=300)
        # the image's own command: the server over TLS, its workdir on the volume
        with container(env, *HARDENED, *mounts, image) as name:
            print(f"healthy in {await_healthy(env, name):.1f} s")
            for probe in probes():
                podman(env, "exec", name, *probe, timeout=60)
            assert podman(env, "exec", name, "id", "-u").stdout.strip() == str(UID)
            # no capability left, even in the effective set of the container's first process
            status = podman(env, "exec", name, "cat", "/proc/1/status").stdout
            assert "CapEff:\t0000000000000000" in status
            for path in ("/probe", "/opt/sangsaeng/probe", "/etc/probe"):
                write = podman(env, "exec", name, "touch", path, check=False)
                assert write.returncode != 0
                assert "Read-only file system" in write.stderr
            # the state the Deployment keeps on its claim is on the volume
            for kept in ("superlink.db", "store.db"):
                podman(env, "exec", name, "test", "-s", f"{STATE}/{kept}")
            config = podman(env, "inspect", "--format",
                            "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}", name)
            assert config.stdout.split() == ["true", f"{UID}:{UID}"]
