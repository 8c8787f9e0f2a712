"""Deliberately broken DP-SGD, to show the empirical audit catches it: TESTS AND BENCHMARKS
ONLY. Nothing in a task, a policy, an option or the environment reaches these; they patch
the partner's step in this process while the context lasts, and the audit's result names
the fault (EmpiricalAudit.fault), so a broken run can never pass for a real one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch

from sangsaeng.client import ghost_step

active: str | None = None  # the fault in force, recorded in the audit's result


@contextmanager
def _named(name: str) -> Iterator[None]:
    global active
    if active is not None:
        raise RuntimeError(f"a fault is already active: {active}")
    active = name
    try:
        yield
    finally:
        active = None


@contextmanager
def noise_scaled(factor: float) -> Iterator[None]:
    """The step adds `factor` times the noise its σ says (σ reported, σ·factor used)."""
    real_init = ghost_step.GhostDPSGD.__init__

    def init(self: ghost_step.GhostDPSGD, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.noise_ratio *= factor

    with _named(f"noise scaled by {factor:g} (σ reported, σ×{factor:g} used)"), \
            mock.patch.object(ghost_step.GhostDPSGD, "__init__", init):
        yield


@contextmanager
def clipping_disabled() -> Iterator[None]:
    """No per-sample gradient is clipped (the noise is still σ × the clipping bound)."""

    def no_clipping(norms: torch.Tensor, max_grad_norm: float) -> torch.Tensor:
        return torch.ones_like(norms)

    with _named("per-sample clipping disabled"), \
            mock.patch.object(ghost_step, "clip_factor", no_clipping):
        yield
