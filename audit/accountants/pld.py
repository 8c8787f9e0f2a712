"""PLD with dp_accounting (dp_accounting.pld, pessimistic discretisation): a tighter
accounting of the same mechanisms (Koskela et al. 2020; Meiser & Mohammadi 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sangsaeng.shared.accounting import Mechanism

from .base import Accountant, dp_event, quiet

if TYPE_CHECKING:
    from dp_accounting.dp_event import DpEvent

DISCRETISATION = 1e-3  # pessimistic: the PLD ε is an upper bound, to within this


class PldAccountant(Accountant):
    """Composes the whole history at once when asked for ε (one convolution per event)."""

    def __init__(self) -> None:
        self._events: list[DpEvent] = []

    def compose(self, mechanism: Mechanism) -> None:
        if mechanism.steps > 0:
            self._events.append(dp_event(mechanism))

    def epsilon(self, delta: float) -> float:
        from dp_accounting import dp_event as events
        from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

        if not self._events:
            return 0.0
        accountant = PLDAccountant(value_discretization_interval=DISCRETISATION)
        with quiet():
            accountant.compose(events.ComposedDpEvent(self._events))
            return float(accountant.get_epsilon(delta))
