"""Runs as the coordinator drives them: recorded in the store first, then started, stopped
and reconciled through the SuperLink's Control API, so that the store never shows a run
Flower does not have, nor calls a run open once Flower has ended it."""

from __future__ import annotations

import datetime as dt

from sangsaeng.shared.task import TaskSpec

from .control import FlowerControl, FlowerRunStatus
from .store import FAILED, OPEN, STARTING, STOPPED, Run, Store

STARTING_GRACE = dt.timedelta(minutes=2)  # a run may sit in STARTING this long


class SuperLinkUnavailable(RuntimeError):
    """The SuperLink's Control API did not answer; nothing was started."""


class RunNotOpen(RuntimeError):
    """The run has already ended."""


def start_run(store: Store, control: FlowerControl, task: TaskSpec, owner: str | None) -> Run:
    """Record the run, then have Flower start it with the record's id in its run config
    (the ServerApp writes to that record). If Flower refuses, the record goes again."""
    run_id = store.create_run(task, owner)
    try:
        flower_run_id = control.start_run(task.to_json(), run_id)
    except Exception as err:
        store.delete_unstarted(run_id)
        raise SuperLinkUnavailable(f"the SuperLink did not start the run ({type(err).__name__})"
                                   ) from err
    store.mark_started(run_id, flower_run_id)
    return store.get_run(run_id)


def stop_run(store: Store, control: FlowerControl, run: Run) -> None:
    """Ask Flower to stop an open run; the ServerApp (or reconcile) records the end."""
    if run.status not in OPEN:
        raise RunNotOpen(f"run {run.id} has already ended ({run.status})")
    if run.flower_run_id is None:
        store.end_run(run.id, STOPPED, "stopped before Flower started it")
        return
    try:
        control.stop_run(int(run.flower_run_id))
    except Exception as err:
        raise SuperLinkUnavailable(f"the SuperLink did not stop the run ({type(err).__name__})"
                                   ) from err


def reconcile(store: Store, control: FlowerControl, run: Run) -> Run:
    """Close `run` in the store if Flower has ended it (stopped, killed, crashed) without
    the ServerApp recording the end; return the run as stored."""
    if run.status not in OPEN:
        return run
    if run.flower_run_id is None:
        if run.status == STARTING and _now() - run.started_at > STARTING_GRACE:
            store.end_run(run.id, FAILED, "the coordinator stopped before Flower started the run")
        return store.get_run(run.id)
    status = control.status(int(run.flower_run_id))
    if status is None:
        store.end_run(run.id, FAILED, "the SuperLink no longer knows this run")
    elif status.finished:
        store.end_run(run.id, *_end_of(status))
    return store.get_run(run.id)


def reconcile_open_runs(store: Store, control: FlowerControl) -> None:
    for run in store.list_runs(status=OPEN):
        reconcile(store, control, run)


def _end_of(status: FlowerRunStatus) -> tuple[str, str]:
    if status.sub_status == "stopped":
        return STOPPED, "stopped before it completed"
    return FAILED, (f"Flower reports the run {status.sub_status or 'ended'} but the ServerApp "
                    f"recorded no end: {status.details or 'no details'}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
