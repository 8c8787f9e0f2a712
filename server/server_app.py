"""The Flower ServerApp: FedAvg over partners' DP-SGD updates, recorded in the store."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from sangsaeng.shared.models import build_model, to_safetensors
from sangsaeng.shared.task import TaskSpec

from . import settings
from .store import COMPLETED, FAILED, STOPPED, Store
from .strategy import RecordingFedAvg, RunFailed

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    task = TaskSpec.from_run_config(dict(context.run_config))  # bad task: fails, nothing stored
    store = Store(settings.store_url())
    run_id = store.start_run(context.run_id, task.dataset, task.to_json(), task.sha256())
    try:
        strategy = RecordingFedAvg(task, store, run_id)
        initial = build_model(task, seed=task.seed).state_dict()
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(initial),
                                num_rounds=task.rounds, timeout=task.round_timeout)
        store.end_run(run_id, COMPLETED,
                      model=to_safetensors(result.arrays.to_torch_state_dict()))
    except RunFailed as err:
        store.end_run(run_id, FAILED, str(err))
        raise
    except Exception as err:
        store.end_run(run_id, FAILED, f"{type(err).__name__}: {err}")
        raise
    except BaseException:  # SystemExit / KeyboardInterrupt: Flower stopped the run
        store.end_run(run_id, STOPPED, "stopped before it completed")
        raise

