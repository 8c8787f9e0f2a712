"""What every auditor's accountant does: compose mechanisms one by one, and say ε at any
point; and the dp_accounting events they share."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Self

from sangsaeng.shared.accounting import Mechanism

if TYPE_CHECKING:
    from dp_accounting.dp_event import DpEvent


class Accountant(ABC):
    @abstractmethod
    def compose(self, mechanism: Mechanism) -> None:
        """Add `mechanism` (its steps of the Poisson-subsampled Gaussian) to the history."""

    @abstractmethod
    def epsilon(self, delta: float) -> float:
        """ε at `delta` of everything composed so far (0 for nothing)."""

    @classmethod
    def of(cls, history: Iterable[Mechanism]) -> Self:
        accountant = cls()
        for mechanism in history:
            accountant.compose(mechanism)
        return accountant


def dp_event(m: Mechanism) -> DpEvent:
    """`m` as dp_accounting's event: `steps` self-compositions of a Poisson-sampled Gaussian."""
    from dp_accounting import dp_event  # import cost ~1 s: only when accounting

    step = dp_event.PoissonSampledDpEvent(m.sample_rate, dp_event.GaussianDpEvent(
        m.noise_multiplier))
    return dp_event.SelfComposedDpEvent(step, m.steps)


@contextmanager
def quiet() -> Iterator[None]:
    """dp_accounting logs (through absl) each fractional RDP order whose series it stops
    summing; it leaves that order out of the minimum, which can only raise ε. Not news
    for an auditor's terminal."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
