"""The ServerApp's record of how a run ended, when the SuperLink's Runtime API refuses it.

The refusal comes from a stand-in Grid: the race it stands for (Flower revoking the
ServerApp's token while a call is in flight) cannot be produced on demand with real
processes. The store is real."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_utils import ObjectPushError
from flwr.supercore.run import Run

from sangsaeng.server import settings
from sangsaeng.server.db import Store
from sangsaeng.server.flower import server_app
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import FAILED, OPEN
from sangsaeng.shared.wire import RUN_CONFIG_STORE_RUN, RUN_CONFIG_TASK

from ..support.tasks import task_with

pytestmark = pytest.mark.usefixtures("flower_task_identity")

def http_refusal(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/runtime/push-messages")
    return httpx.HTTPStatusError("refused", request=request,
                                 response=httpx.Response(status, request=request))


class RefusingGrid(Grid):
    """Three partner nodes are connected; every call to the Runtime API raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def _refuse(self) -> Exception:
        return self.error

    def set_run(self, run: Run) -> None:
        raise self._refuse()

    @property
    def run(self) -> Run:
        raise self._refuse()

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        raise self._refuse()

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2, 3]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise self._refuse()

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise self._refuse()

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        raise self._refuse()


def run_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> Store:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv(settings.STORE_URL_ENV, url)
    store = Store(url)
    for node in (1, 2, 3):  # the grid's nodes are registered partners'
        store.partners.put(f"bank-{node}", "k" * 44)
        store.partners.set_node_id(f"bank-{node}", str(node))
    task = task_with(rounds=2)
    run_id = lifecycle.create(store, task, owner=None)
    context = Context(run_id=77, node_id=0, node_config={}, state=RecordDict(),
                      run_config={RUN_CONFIG_TASK: task.to_json(), RUN_CONFIG_STORE_RUN: run_id})
    with pytest.raises(type(error)):
        server_app.main(RefusingGrid(error), context)
    return store


def test_a_revoked_token_is_left_to_reconciliation(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """401: Flower finished the ServerApp's task (stopped or expired) and knows which;
    the store keeps the run open for server/runs/reconcile.py to record Flower's status."""
    run = run_main(tmp_path, monkeypatch, http_refusal(401)).runs.get(1)
    assert run.status in OPEN and run.reason is None


def test_a_refused_object_push_is_left_to_reconciliation(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A message being pushed when the run is stopped: its push session ended with the run."""
    error = ObjectPushError("ab" * 32, run_id=77, session_id="s")
    run = run_main(tmp_path, monkeypatch, error).runs.get(1)
    assert run.status in OPEN and run.reason is None


def test_any_other_refusal_fails_the_run(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_main(tmp_path, monkeypatch, http_refusal(500)).runs.get(1)
    assert run.status == FAILED
    assert run.reason is not None and run.reason.startswith("HTTPStatusError: refused")
