"""Runs as the coordinator drives them: recorded in the store first, then started, stopped
and reconciled through the SuperLink's Control API, so that the store never shows a run
Flower does not have, nor calls a run open once Flower has ended it."""

from __future__ import annotations

import datetime as dt

from sangsaeng.shared.task import TaskSpec

from .control import FlowerControl, FlowerRunStatus
from .store import FAILED, OPEN, STARTING, STOPPED, Run, Store

STARTING_GRACE = dt.timedelta(minutes=2)  # a run may sit in STARTING this long
# Once Flower reports a run finished, its ServerApp gets this long to record the end itself
# (with the last model, when stopped) before reconciliation closes the run without it.
END_GRACE = dt.timedelta(seconds=30)


class SuperLinkUnavailable(RuntimeError):
    """The SuperLink's Control API did not answer as expected."""


class RunNotOpen(RuntimeError):
    """The run has already ended."""


def start_run(store: Store, control: FlowerControl, task: TaskSpec, owner: str | None) -> Run:
    """Record the run, then have Flower start it with the record's id in its run config
    (the ServerApp writes to that record, and runs nothing the store does not hold open)."""
    run_id = store.create_run(task, owner)
    try:
        flower_run_id = control.start_run(task.to_json(), run_id)
    except Exception as err:
        # Flower may or may not have accepted it (a time-out): the record stays, closed.
        store.end_run(run_id, FAILED, f"the SuperLink did not confirm the start "
                                      f"({type(err).__name__})")
        raise SuperLinkUnavailable(f"the SuperLink did not start the run ({type(err).__name__})"
                                   ) from err
    if not store.mark_started(run_id, flower_run_id):  # stopped while Flower was starting it
        control.stop_run(flower_run_id)
    return store.get_run(run_id)


def stop_run(store: Store, control: FlowerControl, run: Run) -> None:
    """Ask Flower to stop an open run; the ServerApp (or reconcile) records the end."""
    if run.status not in OPEN:
        raise RunNotOpen(f"run {run.id} has already ended ({run.status})")
    if run.flower_run_id is None:  # start_run will stop it in Flower once it has an id
        store.end_run(run.id, STOPPED, "stopped before Flower started it")
        return
    try:
        control.stop_run(int(run.flower_run_id))
    except Exception as err:
        status = _status_or_none(control, int(run.flower_run_id))
        if status is None or status.finished:  # Flower ended it first
            raise RunNotOpen(f"run {run.id} has already ended in Flower") from None
        raise SuperLinkUnavailable(f"the SuperLink did not stop the run ({type(err).__name__})"
                                   ) from err


def reconcile(store: Store, control: FlowerControl, run: Run) -> None:
    """Close `run` in the store if Flower has ended it (stopped, killed, crashed, forgot
    it) and the ServerApp did not record the end in time."""
    if run.status not in OPEN:
        return
    if run.flower_run_id is None:
        if run.status == STARTING and _now() - run.started_at > STARTING_GRACE:
            store.end_run(run.id, FAILED, "the coordinator stopped before Flower started the run")
        return
    status = control.status(int(run.flower_run_id))
    if status is None:
        store.end_run(run.id, FAILED, "the SuperLink no longer knows this run")
    elif status.finished and _now() - (status.finished_at or _now()) > END_GRACE:
        store.end_run(run.id, *_end_of(status))


def reconcile_open_runs(store: Store, control: FlowerControl) -> None:
    for run in store.list_runs(status=OPEN):
        reconcile(store, control, run)


def _end_of(status: FlowerRunStatus) -> tuple[str, str]:
    if status.sub_status == "stopped":
        return STOPPED, "stopped before it completed"
    return FAILED, (f"Flower reports the run {status.sub_status or 'ended'} but the ServerApp "
                    f"recorded no end: {status.details or 'no details'}")


def _status_or_none(control: FlowerControl, flower_run_id: int) -> FlowerRunStatus | None:
    try:
        return control.status(flower_run_id)
    except Exception:
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
