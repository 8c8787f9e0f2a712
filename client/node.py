"""`sangsaeng client node`: the partner's SuperNode, started so that only its own installed
release runs on its data (client/launcher.py explains how)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sangsaeng.shared.wire import NODE_CONFIG_POLICY

from . import launcher

LOOPBACK = "127.0.0.1"
READY_SECONDS = 60.0


class NodeError(RuntimeError):
    pass


def supernode_argv(superlink: str, policy: Path, runtime_port: int, secret: Path,
                   tls: list[str]) -> list[str]:
    """flower-supernode with no ClientApp launcher of its own (`--isolation process`) and
    its Runtime API on loopback, guarded by the node's secret."""
    scripts = Path(sys.executable).parent  # this environment's, also when not activated
    return [str(scripts / "flower-supernode"), *tls, "--superlink", superlink,
            "--isolation", "process", "--host", LOOPBACK, "--port", str(runtime_port),
            "--superexec-auth-secret-file", str(secret),
            # a TOML-quoted string (json.dumps quotes the same way for a path)
            "--node-config", f'{NODE_CONFIG_POLICY}="{policy.resolve()}"']


def run_node(superlink: str, policy: Path, runtime_port: int, tls: list[str]) -> int:
    """Run the SuperNode and the launcher until the SuperNode exits (or Ctrl-C / SIGTERM);
    the SuperNode's exit code."""
    private = Path(tempfile.mkdtemp(prefix="sangsaeng-node-"))  # mode 0700
    secret = private / "superexec-secret"
    secret.write_bytes(os.urandom(32))
    secret.chmod(0o600)
    node = subprocess.Popen(supernode_argv(superlink, policy, runtime_port, secret, tls),
                            stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the SuperNode is stopped too
    try:
        _await_port(runtime_port, node)
        launcher.serve(f"{LOOPBACK}:{runtime_port}", secret, alive=lambda: node.poll() is None)
    except KeyboardInterrupt:
        pass
    finally:
        if node.poll() is None:
            node.terminate()
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
        shutil.rmtree(private, ignore_errors=True)
    return node.wait()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _await_port(port: int, node: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise NodeError(f"flower-supernode exited with code {node.returncode}")
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.2)
    raise NodeError(f"flower-supernode did not open its Runtime API on port {port} "
                    f"in {READY_SECONDS:g} s")
