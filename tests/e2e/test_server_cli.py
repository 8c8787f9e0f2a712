"""`sangsaeng server` as an operator runs it: up, ready, only the Fleet API reachable by
partners, and every process gone after SIGTERM (or Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sangsaeng.server.deployment.flower_processes import free_port

from ..support.processes import flower_processes, ours

SANGSAENG = str(Path(sys.executable).parent / "sangsaeng")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_starts_ready_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    api_port, fleet_port = free_port(), free_port()
    env = {**os.environ, "SANGSAENG_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    server = subprocess.Popen(
        [SANGSAENG, "server", "--api-port", str(api_port), "--fleet-port", str(fleet_port),
         "--workdir", str(tmp_path / "coordinator")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                ready = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/ready")
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
        fleet = f"http://127.0.0.1:{fleet_port}"
        assert httpx.post(f"{fleet}/v1/control/list-runs", content=b"").status_code == 404
        assert (tmp_path / "coordinator" / "superlink.db").exists()  # Flower's state persists
    finally:
        server.send_signal(sig)
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out
    assert "stopping..." in out and flower_processes() == []
