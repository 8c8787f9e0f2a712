"""The states of a run in the coordinator's store. Only lifecycle.py moves a run between
them: STARTING (recorded, Flower not yet confirmed) → RUNNING (bound to its Flower run) →
COMPLETED, FAILED or STOPPED, for good."""

from __future__ import annotations

STARTING, RUNNING = "starting", "running"  # open: before/after Flower accepted the run
COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"  # ended, for good
OPEN = (STARTING, RUNNING)
