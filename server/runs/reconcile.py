"""Keep open runs in the store in step with Flower: close those Flower has ended (stopped,
killed, crashed, forgotten) when the ServerApp could not record the end itself."""

from __future__ import annotations

import datetime as dt

from sangsaeng.server.db import Store
from sangsaeng.server.db.tables import Run, now
from sangsaeng.server.flower.control import FlowerControl, FlowerRunStatus

from . import lifecycle
from .states import FAILED, OPEN, STARTING, STOPPED

STARTING_GRACE = dt.timedelta(minutes=2)  # a run may sit in STARTING this long
# Once Flower reports a run finished, its ServerApp gets this long to record the end itself
# (with the last model, when stopped) before reconciliation closes the run without it.
END_GRACE = dt.timedelta(seconds=30)


def reconcile(store: Store, control: FlowerControl, run: Run) -> None:
    """Close `run` in the store if Flower has ended it and the ServerApp did not record
    the end in time."""
    if run.status not in OPEN:
        return
    if run.flower_run_id is None:
        if run.status == STARTING and now() - run.started_at > STARTING_GRACE:
            lifecycle.end(store, run.id, FAILED,
                          "the coordinator stopped before Flower started the run")
        return
    status = control.status(int(run.flower_run_id))
    if status is None:
        lifecycle.end(store, run.id, FAILED, "the SuperLink no longer knows this run")
    elif status.finished and now() - (status.finished_at or now()) > END_GRACE:
        lifecycle.end(store, run.id, *_end_of(status))


def reconcile_open_runs(store: Store, control: FlowerControl) -> None:
    for run in store.runs.list(status=OPEN):
        reconcile(store, control, run)


def _end_of(status: FlowerRunStatus) -> tuple[str, str]:
    if status.sub_status == "stopped":
        return STOPPED, "stopped before it completed"
    return FAILED, (f"Flower reports the run {status.sub_status or 'ended'} but the ServerApp "
                    f"recorded no end: {status.details or 'no details'}")
