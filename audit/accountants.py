"""The auditor's accountants: Google's dp_accounting, a different library from the
partner's (Opacus), recomputing ε from the recorded mechanisms alone.

- RDP (dp_accounting.rdp): the same analysis the partner's Opacus RDP accountant claims
  to run, written independently: the RDP of Poisson-subsampled Gaussian steps (Mironov,
  Talwar, Zhang 2019, arXiv:1908.10530 Sec. 3.3, in both libraries) and the same
  RDP-to-(ε, δ) conversion (Opacus: Balle et al., arXiv:1905.09982 Thm. 21;
  dp_accounting: Canonne et al., arXiv:2004.00010 Prop. 12 — the same formula). A claim
  must match it within TOLERANCE. At integer orders the two agree to 1e-14; at fractional
  orders dp_accounting's series comes out above the exact value (measured here against
  numerical integration with mpmath, q = 0.04, σ = 1: up to 0.25 % at α = 2.9, where
  Opacus is within 1e-11), so its ε is a little higher (0.04 % on the demo's 10 rounds).
  A tolerance of 1 % leaves room for that and still names any material misstatement.
- PLD (dp_accounting.pld, pessimistic discretisation): a tighter accounting of the same
  mechanisms (Koskela et al. 2020; Meiser & Mohammadi 2018). A sound RDP claim is never
  below it; it shows how much the RDP bound over-states.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sangsaeng.shared.accounting import Mechanism

if TYPE_CHECKING:
    from dp_accounting.dp_event import DpEvent

RELATIVE_TOLERANCE = 1e-2
ABSOLUTE_TOLERANCE = 1e-2
TOLERANCE_TEXT = "1% of the claimed ε, at least 0.01"
PLD_DISCRETISATION = 1e-3  # pessimistic: the PLD ε is an upper bound, to within this
# The orders a claim is optimised over: Opacus' RDPAccountant.DEFAULT_ALPHAS, which the
# partner's accountant uses (README, Privacy model). They are part of the claimed analysis:
# dp_accounting's own defaults add orders up to 1024, which give a smaller ε for small ε.
# The auditor's own copy, not the partner's list: an edit on the partner's side (say, high
# orders, which lower small ε's) must show up as a mismatch, not silently move both.
CLAIMED_ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))


def tolerance(claimed: float) -> float:
    return max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * claimed)


def _event(m: Mechanism) -> DpEvent:
    from dp_accounting import dp_event  # import cost ~1 s: only when accounting

    step = dp_event.PoissonSampledDpEvent(m.sample_rate, dp_event.GaussianDpEvent(
        m.noise_multiplier))
    return dp_event.SelfComposedDpEvent(step, m.steps)


@contextmanager
def _quiet() -> Iterator[None]:
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


class RunningRdp:
    """An RDP accountant that composes mechanisms one by one and says ε at any point."""

    def __init__(self) -> None:
        from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant

        self._accountant = RdpAccountant(orders=CLAIMED_ORDERS)
        self._empty = True

    def compose(self, m: Mechanism) -> None:
        if m.steps > 0:
            with _quiet():
                self._accountant.compose(_event(m))
            self._empty = False

    def epsilon(self, delta: float) -> float:
        return 0.0 if self._empty else float(self._accountant.get_epsilon(delta))


def rdp_epsilon(history: Iterable[Mechanism], delta: float) -> float:
    accountant = RunningRdp()
    for m in history:
        accountant.compose(m)
    return accountant.epsilon(delta)


def pld_epsilon(history: Iterable[Mechanism], delta: float) -> float:
    from dp_accounting import dp_event
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

    events = [_event(m) for m in history if m.steps > 0]
    if not events:
        return 0.0
    accountant = PLDAccountant(value_discretization_interval=PLD_DISCRETISATION)
    with _quiet():
        accountant.compose(dp_event.ComposedDpEvent(events))
        return float(accountant.get_epsilon(delta))
