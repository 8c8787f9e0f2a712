"""The Flower ServerApp: FedAvg over partners' DP-SGD updates, recorded in the store."""

from __future__ import annotations

import httpx
import torch
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.inflatable.inflatable_utils import ObjectPushError

from sangsaeng.server import settings
from sangsaeng.server.db import Store
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, FAILED, STOPPED
from sangsaeng.shared.models import build_model, check_fits, read_weights, to_safetensors
from sangsaeng.shared.task import TaskSpec
from sangsaeng.shared.wire import RUN_CONFIG_STORE_RUN

from .grid import PromptGrid
from .strategy import RecordingFedAvg, RunFailed

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    task = TaskSpec.from_run_config(dict(context.run_config))  # bad task: fails, nothing stored
    store = Store(settings.store_url())
    run_id = _stored_run(store, context, task)
    strategy = RecordingFedAvg(task, store, run_id)
    try:
        initial = ArrayRecord(_initial_weights(store, run_id, task))
        prompt_grid = PromptGrid(grid)
        if task.base_model is not None:  # the receipt's "before": partners' DP evaluation
            strategy.evaluate_base(prompt_grid, initial)
        result = strategy.start(grid=prompt_grid, initial_arrays=initial,
                                num_rounds=task.rounds, timeout=task.round_timeout)
        lifecycle.end(store, run_id, COMPLETED, model=_weights(result.arrays))
    except BaseException as err:
        if _ended_by_flower(err):
            # Flower ended this ServerApp's task (a stop, or its expiry) and the SIGINT it
            # sends itself has not landed yet: Flower knows why, and reconciliation
            # (runs/reconcile.py) records its status, not this error.
            raise
        # What was done stays recorded: the reason, and the last model partners paid for.
        if isinstance(err, RunFailed):
            status, reason = FAILED, str(err)
        elif isinstance(err, Exception):
            status, reason = FAILED, f"{type(err).__name__}: {err}"
        else:  # SystemExit / KeyboardInterrupt: Flower stopped the run
            status, reason = STOPPED, "stopped before it completed"
        lifecycle.end(store, run_id, status, reason, model=_weights(strategy.latest_arrays))
        raise


def _stored_run(store: Store, context: Context, task: TaskSpec) -> int:
    """The store's record of this run, created by lifecycle.start before Flower started it,
    claimed for this Flower run; only a record that is still open is run."""
    run_id = context.run_config.get(RUN_CONFIG_STORE_RUN)
    run = store.runs.find(run_id) if isinstance(run_id, int) and run_id > 0 else None
    if run is None:
        raise RuntimeError("no record of this run in the coordinator's store: runs start "
                           "through Sangsaeng's API (lifecycle.start), not with Flower directly")
    if run.task_sha256 != task.sha256():
        raise RuntimeError(f"run {run_id}'s task differs from the one recorded for it")
    if not lifecycle.claim(store, run.id, context.run_id):
        raise RuntimeError(f"run {run_id} has ended or belongs to another Flower run")
    return run.id


def _initial_weights(store: Store, run_id: int, task: TaskSpec) -> dict[str, torch.Tensor]:
    """The startup's base model the task names (checked to fit when the run was
    created), or a seeded initialisation."""
    if task.base_model is None:
        return build_model(task, seed=task.seed).state_dict()
    weights = store.base_models.weights(store.runs.get(run_id).owner, task.base_model)
    if weights is None:
        raise RunFailed(f"base model {task.base_model} is no longer in the store")
    state = read_weights(weights)
    check_fits(task, state)
    return state


def _ended_by_flower(err: BaseException) -> bool:
    """The error says Flower has ended this ServerApp's task, before the SIGINT that tells
    it so has landed.
    - The Runtime API refused the task's token (401). Flower's HTTP retry sends the process
      SIGINT on the first 401; a call that meets the next one before the signal is handled
      raises the error (flwr/supercore/retry/http_retry.py, _should_giveup), e.g. when the
      heartbeat thread met the first.
    - An object push was refused: the run's push session ends with the run, and a message
      being sent when the run stops fails this way (seen in CI right after a StopRun). A
      push session lost for another reason is still recorded: reconciliation reads Flower's
      status and its details."""
    if isinstance(err, ObjectPushError):
        return True
    return (isinstance(err, httpx.HTTPStatusError)
            and err.response.status_code == httpx.codes.UNAUTHORIZED)


def _weights(arrays: ArrayRecord | None) -> bytes | None:
    return None if arrays is None else to_safetensors(arrays.to_torch_state_dict())

