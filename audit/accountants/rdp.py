"""RDP with dp_accounting (dp_accounting.rdp): the bound Sangsaeng claimed before its PLD
accountant, which reports in older stores and ledgers still carry: the RDP of Poisson-
subsampled Gaussian steps (Mironov, Talwar, Zhang 2019, arXiv:1908.10530 Sec. 3.3) and the
RDP-to-(ε, δ) conversion of Canonne et al., arXiv:2004.00010 Prop. 12 (Opacus' formula,
Balle et al., arXiv:1905.09982 Thm. 21, is the same). At fractional orders dp_accounting's
series comes out above the exact value (measured here against numerical integration with
mpmath, q = 0.04, σ = 1: up to 0.25 % at α = 2.9), so its ε is a little higher than
Opacus' (0.04 % on the demo's 10 rounds). No sound claim is above it (beyond that margin).
"""

from __future__ import annotations

from sangsaeng.shared.accounting import Mechanism

from .base import Accountant, dp_event, quiet

# The orders older releases' claims were optimised over: Opacus' RDPAccountant.
# DEFAULT_ALPHAS. dp_accounting's own defaults add orders up to 1024, which give a smaller ε
# for small ε; with these, the bound is the one those claims were computed with.
CLAIMED_ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))


class RdpAccountant(Accountant):
    def __init__(self) -> None:
        from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant as Rdp

        self._accountant = Rdp(orders=CLAIMED_ORDERS)
        self._empty = True

    def compose(self, mechanism: Mechanism) -> None:
        if mechanism.steps > 0:
            with quiet():
                self._accountant.compose(dp_event(mechanism))
            self._empty = False

    def epsilon(self, delta: float) -> float:
        return 0.0 if self._empty else float(self._accountant.get_epsilon(delta))
