"""The only code that changes a run's state in the store (states.py), used by the API,
the ServerApp and the reconciler alike.

A run is recorded first (STARTING), then started in Flower with the record's id in its
run config, and bound to its Flower run (RUNNING) by whichever comes first: the API once
Flower accepted it, or the ServerApp when it starts. It ends once, for good: the first
end recorded wins. So the store never shows a run Flower does not have, nor calls a run
open once Flower has ended it (reconcile.py closes what the ServerApp could not).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import update

from sangsaeng.server.db import Store
from sangsaeng.server.db.tables import Run, now
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.shared.task import TaskSpec

from .states import FAILED, OPEN, RUNNING, STARTING, STOPPED


class SuperLinkUnavailable(RuntimeError):
    """The SuperLink's Control API did not answer as expected."""


class RunNotOpen(RuntimeError):
    """The run has already ended."""


# --- transitions ----------------------------------------------------------------------------

def create(store: Store, task: TaskSpec, owner: str | None) -> int:
    """A STARTING run, before Flower is asked to start it."""
    with store.session() as s:
        run = Run(owner=owner, dataset=task.dataset, task_json=task.to_json(),
                  task_sha256=task.sha256(), status=STARTING)
        s.add(run)
        s.flush()
        return run.id


def claim(store: Store, run_id: int, flower_run_id: int) -> bool:
    """Bind an open run to its Flower run and mark it RUNNING (by `start` once Flower
    accepted it, and by the ServerApp when it starts, in either order). False if the run
    has ended meanwhile (stopped while starting) or is bound to another Flower run."""
    with store.session() as s:
        bound = s.execute(
            update(Run).where(Run.id == run_id, Run.status.in_(OPEN),
                              (Run.flower_run_id.is_(None))
                              | (Run.flower_run_id == str(flower_run_id)))
            .values(flower_run_id=str(flower_run_id)))
        s.execute(update(Run).where(Run.id == run_id, Run.status == STARTING,
                                    Run.flower_run_id == str(flower_run_id))
                  .values(status=RUNNING))
        return bool(bound.rowcount)  # type: ignore[attr-defined]


def end(store: Store, run_id: int, status: str, reason: str | None = None,
        model: bytes | None = None) -> bool:
    """Close an open run as COMPLETED (with its model), FAILED or STOPPED (with the
    reason, and the last model partners paid for, if any). The first end recorded wins;
    returns whether this call closed the run."""
    with store.session() as s:
        digest = None if model is None else hashlib.sha256(model).hexdigest()
        result = s.execute(update(Run).where(Run.id == run_id, Run.status.in_(OPEN))
                           .values(status=status, reason=reason, model=model,
                                   model_sha256=digest, finished_at=now()))
        return bool(result.rowcount)  # type: ignore[attr-defined]


# --- what the API asks for ------------------------------------------------------------------

def start(store: Store, control: FlowerControl, task: TaskSpec, owner: str | None) -> Run:
    """Record the run, then have Flower start it with the record's id in its run config
    (the ServerApp writes to that record, and runs nothing the store does not hold open)."""
    run_id = create(store, task, owner)
    try:
        flower_run_id = control.start_run(task.to_json(), run_id)
    except Exception as err:
        # Flower may or may not have accepted it (a time-out): the record stays, closed.
        end(store, run_id, FAILED, f"the SuperLink did not confirm the start "
                                   f"({type(err).__name__})")
        raise SuperLinkUnavailable(f"the SuperLink did not start the run ({type(err).__name__})"
                                   ) from err
    if not claim(store, run_id, flower_run_id):  # stopped while Flower was starting it
        control.stop_run(flower_run_id)
    return store.runs.get(run_id)


def stop(store: Store, control: FlowerControl, run: Run) -> None:
    """Ask Flower to stop an open run; the ServerApp (or reconciliation) records the end."""
    if run.status not in OPEN:
        raise RunNotOpen(f"run {run.id} has already ended ({run.status})")
    if run.flower_run_id is None:  # `start` will stop it in Flower once it has an id
        end(store, run.id, STOPPED, "stopped before Flower started it")
        return
    try:
        control.stop_run(int(run.flower_run_id))
    except Exception as err:
        try:
            status = control.status(int(run.flower_run_id))
        except Exception:
            status = None
        if status is None or status.finished:  # Flower ended it first
            raise RunNotOpen(f"run {run.id} has already ended in Flower") from None
        raise SuperLinkUnavailable(f"the SuperLink did not stop the run ({type(err).__name__})"
                                   ) from err
