"""`sangsaeng server` as an operator runs it: with its certificate, up, ready over TLS, only
the Fleet API reachable by partners, and every process gone after SIGTERM (or Ctrl-C)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sangsaeng.server.deployment.flower_processes import free_port

from ..support.cli import sangsaeng
from ..support.processes import flower_processes, ours

SANGSAENG = str(Path(sys.executable).parent / "sangsaeng")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_starts_ready_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    api_port, fleet_port = free_port(), free_port()
    env = {**os.environ, "SANGSAENG_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    made = sangsaeng("admin", "certificates", "--out", str(tmp_path / "tls"), "--host",
                     "coordinator.example")
    assert made.returncode == 0, made.stdout
    tls = tmp_path / "tls"
    ca = ssl.create_default_context(cafile=tls / "ca.pem")
    server = subprocess.Popen(
        [SANGSAENG, "server", "--api-port", str(api_port), "--fleet-port", str(fleet_port),
         "--workdir", str(tmp_path / "coordinator"), "--tls-certfile", str(tls / "server.pem"),
         "--tls-keyfile", str(tls / "server.key")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                ready = httpx.get(f"https://127.0.0.1:{api_port}/api/v1/ready", verify=ca)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never got ready"
            time.sleep(0.5)
        assert ready.json() == {"ready": True, "store": "ok", "superlink": "ok"}
        # the SuperLink listens on loopback only, and its Control API is not behind the proxy
        [superlink] = [argv for _, argv in ours()
                       if Path(argv[1] if len(argv) > 1 else "").name == "flower-superlink"
                       or Path(argv[0]).name == "flower-superlink"]
        assert superlink[superlink.index("--host") + 1] == "127.0.0.1"
        fleet = f"https://127.0.0.1:{fleet_port}"
        assert httpx.post(f"{fleet}/v1/control/list-runs", content=b"",
                          verify=ca).status_code == 404
        assert (tmp_path / "coordinator" / "superlink.db").exists()  # Flower's state persists
        # the container's health command, and what it says without the right CA
        api = f"https://127.0.0.1:{api_port}"
        assert sangsaeng("admin", "probe", "--api-url", api, "--ca-file",
                         str(tls / "ca.pem")).returncode == 0
        unverified = sangsaeng("admin", "probe", "--api-url", api)
        assert unverified.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in unverified.stdout
    finally:
        server.send_signal(sig)
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out
    assert "stopping..." in out and flower_processes() == []


def test_server_refuses_to_start_without_its_certificate(tmp_path: Path) -> None:
    result = sangsaeng("server", "--workdir", str(tmp_path / "coordinator"),
                       env={"SANGSAENG_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"})
    assert result.returncode == 2 and "give --tls-certfile and --tls-keyfile" in result.stdout
    assert not (tmp_path / "coordinator").exists()


def test_a_certificate_is_rotated_by_issuing_it_again_and_restarting(tmp_path: Path) -> None:
    """Partners and startups trust the CA, not the certificate: after a restart with a
    new one, the same CA file verifies it, and the SuperLink's state (its registered
    nodes, its runs) is kept in the workdir across the restart."""
    env = {**os.environ, "SANGSAENG_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    tls, port = tmp_path / "tls", free_port()
    served = []
    for _ in range(2):
        assert sangsaeng("admin", "certificates", "--out", str(tls), "--host",
                         "127.0.0.1").returncode == 0
        server = subprocess.Popen(
            [SANGSAENG, "server", "--api-port", str(port), "--fleet-port", str(free_port()),
             "--workdir", str(tmp_path / "coordinator"), "--tls-certfile",
             str(tls / "server.pem"), "--tls-keyfile", str(tls / "server.key")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while sangsaeng("admin", "probe", "--api-url", f"https://127.0.0.1:{port}",
                            "--ca-file", str(tls / "ca.pem")).returncode != 0:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
            served.append(ssl.get_server_certificate(("127.0.0.1", port)))
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)
    assert served[0] != served[1] and (tmp_path / "coordinator" / "superlink.db").exists()
    assert flower_processes() == []
