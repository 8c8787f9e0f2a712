"""The partner's own ClientApp launcher: only its installed release ever touches its data.

Flower's SuperNode installs the FAB the coordinator ships and imports whatever ClientApp
module it names, so a dishonest coordinator could run any code beside the partner's data
(Flower's `--trusted-entities` accepts only Flower-Hub-signed FABs). Here the SuperNode
runs with `--isolation process`, which starts no ClientApp launcher of its own, and this
module takes its place on the SuperNode's local Runtime API:

- the loop (`serve`) acquires every task the SuperNode queues and starts one child
  process per task (Flower starts one process per message too);
- the child (`run_task`) pulls the task's input, hashes the FAB bytes it was given and
  compares them with the FAB this release builds itself (shared/fab.py, deterministic).
  A different FAB, or any task but a ClientApp's, is answered with an error reply and
  the task marked failed, at once: leaving a task unanswered would keep the SuperNode
  waiting for its reply until the round times out. The pinned FAB runs
  `sangsaeng.client.client_app:app` from this install; the FAB itself is never
  installed and no module of it is imported, even when its hash matches.

A per-node random secret (`--superexec-auth-secret-file`, given to the SuperNode and to
this loop) keeps other local processes from acquiring the node's tasks.

Flower internals used, pinned by `flwr==1.42.0`: flwr.supercore.runtime.RuntimeHttpClient,
flwr.supercore.interceptors, flwr.supercore.heartbeat, flwr.supercore.retry,
flwr.proto.runtime_pb2.AcquireTaskRequest, flwr.supercore.constant.TaskType and
flwr.supernode.runtime.run_clientapp.{pull_task_input, push_message, push_task_output}
(the same calls `flwr-clientapp` makes, minus installing and importing the FAB).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from flwr.app import Error, Message
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest
from flwr.supercore.constant import TaskType
from flwr.supercore.interceptors import (
    RuntimeTokenHttpInterceptor,
    RuntimeVersionHttpInterceptor,
    SuperExecAuthHttpInterceptor,
)
from flwr.supercore.protobuf.client import ProtobufClientInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # as flower-superexec's
TOKEN_ENV = "SANGSAENG_TASK_TOKEN"  # the task token reaches the child here, never in argv
# AgentApp tasks are taken too, only to be refused: a FAB declaring an AgentApp makes the
# SuperNode queue those instead, and left alone they would never be answered.
ACQUIRED = [TaskType.CLIENT_APP, TaskType.AGENT_APP]


def pinned_fab_sha256() -> str:
    """The sha256 of the FAB this partner's installed release builds."""
    from sangsaeng.shared.fab import build_fab

    return build_fab()[1]


def refusal(fab: bytes, expected: str) -> str | None:
    """Why a task carrying `fab` is refused, or None if it is the pinned FAB."""
    actual = hashlib.sha256(fab).hexdigest()
    if actual == expected:
        return None
    return (f"FAB refused by partner: sha256 {actual[:16]}... is not the FAB of the "
            f"partner's installed sangsaeng release ({expected[:16]}...)")


def _client(address: str, interceptors: list[ProtobufClientInterceptor],
            retry: bool = True) -> RuntimeHttpClient:
    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,
        interceptors=interceptors,
        retry_invoker=make_simple_http_retry_invoker() if retry else None)


def serve(address: str, secret_file: Path, alive: Callable[[], bool]) -> None:
    """Acquire the SuperNode's tasks at `address` while `alive()`; one child per task."""
    from flwr.supercore.auth import load_superexec_auth_secret

    expected = pinned_fab_sha256()
    log.info("accepting only runs of FAB sha256 %s", expected)
    secret = load_superexec_auth_secret(secret_file=str(secret_file))
    if not secret:
        raise ValueError("the node's Runtime API secret is empty")
    client = _client(address, [
        RuntimeVersionHttpInterceptor(component_name="SuperExec"),
        SuperExecAuthHttpInterceptor(
            master_secret=secret,
            protected_methods=frozenset({"/flwr.proto.Runtime/AcquireTask"}))],
        retry=False)  # the loop retries itself, for as long as the SuperNode lives
    children: list[subprocess.Popen[bytes]] = []
    try:
        while alive():
            try:
                reply = client.AcquireTask(AcquireTaskRequest(supported_task_types=ACQUIRED))
            except httpx.TransportError:  # the SuperNode restarting, or gone: alive() says
                time.sleep(POLL_SECONDS)
                continue
            if reply.HasField("task") and reply.token:
                argv = [sys.executable, "-m", __name__, address, expected]
                if reply.task.type != TaskType.CLIENT_APP:
                    argv.append(f"task type {reply.task.type} is refused by this partner "
                                "(only its own ClientApp runs here)")
                children.append(subprocess.Popen(
                    argv, env={**os.environ, TOKEN_ENV: reply.token}, stdin=subprocess.DEVNULL))
            children = [c for c in children if c.poll() is None]
            time.sleep(POLL_SECONDS)
    finally:
        client.close()
        for child in children:
            child.terminate()


def run_task(address: str, token: str, expected: str, refused: str | None) -> int:
    """One task: refuse it, or answer it with the installed ClientApp."""
    from flwr.supercore.app_utils import start_parent_process_monitor
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supernode.runtime.run_clientapp import (
        pull_task_input,
        push_message,
        push_task_output,
    )

    start_parent_process_monitor(os.getppid())  # ends with the launcher
    client = _client(address, [RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
                               RuntimeTokenHttpInterceptor(token)])
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    context = reply = None
    status, details = SubStatus.FAILED, "task failed"
    try:
        # The FAB's bytes as the SuperNode stored them (it checks they match their hash).
        message, context, _, fab = pull_task_input(client)
        refused = refused or refusal(fab.content, expected)
        if refused is None and message.metadata.run_id != context.run_id:
            # Flower keeps one context per run *series*, overwritten by its newest run: a
            # coordinator could have one run's messages handled as another run's
            refused = "message refused by partner: it is not of the run its context is for"
        if refused is not None:
            log.error("%s", refused)
            reply = Message(Error(code=ErrorCode.INVALID_FAB, reason=refused), reply_to=message)
            details = refused
        else:
            from sangsaeng.client.client_app import app  # this install's, never the FAB's

            reply = app(message=message, context=context)
            status, details = SubStatus.COMPLETED, ""
    except Exception:
        # The ClientApp turns its own errors into safe replies; anything here is the
        # launcher's, and its details stay in the partner's log.
        log.exception("task failed")
    finally:
        try:
            if reply is not None and context is not None:
                push_message(client, reply, context)
        finally:
            push_task_output(client, context, status, details)
            heartbeat.stop()
            client.close()
    return 0 if status == SubStatus.COMPLETED else 1


if __name__ == "__main__":  # a task child: ADDRESS EXPECTED_SHA256 [REFUSAL]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher %(message)s")
    sys.exit(run_task(sys.argv[1], os.environ[TOKEN_ENV], sys.argv[2],
                      sys.argv[3] if len(sys.argv) > 3 else None))
