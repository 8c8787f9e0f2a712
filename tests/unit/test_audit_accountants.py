"""The auditor's second accountant (dp_accounting) against the partner's (Opacus) over a
grid of mechanisms a partner policy would allow, up to ε 20: within the stated tolerance,
and the PLD accounting of the same history never above the RDP one."""

from __future__ import annotations

import itertools
import warnings

import pytest

from sangsaeng.audit.accountants import PldAccountant, RdpAccountant
from sangsaeng.audit.verify import tolerance
from sangsaeng.shared.accounting import Mechanism, epsilon

GRID = [Mechanism(noise_multiplier=sigma, sample_rate=q, steps=steps)
        for sigma, q, steps in itertools.product([0.7, 1.0, 1.5, 5.0], [0.01, 0.05, 0.1],
                                                 [1, 100, 600])]


@pytest.mark.parametrize("delta", [1e-5, 1e-7])
def test_the_two_libraries_agree_within_the_tolerance(delta: float) -> None:
    compared = 0
    for m in GRID:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus: "optimal order is the largest alpha"
            claimed = epsilon([m], delta)
        if claimed > 20:
            continue
        recomputed = RdpAccountant.of([m]).epsilon(delta)
        assert abs(recomputed - claimed) <= tolerance(claimed), (m, claimed, recomputed)
        compared += 1
    assert compared >= 25


def test_composition_and_pld() -> None:
    history = [GRID[4], GRID[13], GRID[4]]
    claimed = epsilon(history, 1e-5)
    assert abs(RdpAccountant.of(history).epsilon(1e-5) - claimed) <= tolerance(claimed)
    assert PldAccountant.of(history).epsilon(1e-5) < claimed
    assert RdpAccountant().epsilon(1e-5) == PldAccountant().epsilon(1e-5) == 0.0


def test_the_auditor_claims_the_orders_the_partner_uses() -> None:
    """Two copies on purpose (audit/accountants/rdp.py): they must be the same list, and the
    orders Opacus' RDPAccountant uses by default."""
    from opacus.accountants import RDPAccountant

    from sangsaeng.audit.accountants import CLAIMED_ORDERS
    from sangsaeng.shared.accounting import ORDERS

    assert CLAIMED_ORDERS == ORDERS == RDPAccountant.DEFAULT_ALPHAS
