"""The auditor's accountants against the partner's over a grid of mechanisms a partner
policy would allow, up to ε 20: the partner's claim (PLD, dp_accounting) is inside the
certified bounds of the auditor's tight accountant (PRV, Opacus: a different library and
method), at least its estimate (to 1e-4) and within 1 % (or 0.01) of it, and below the RDP
bound."""

from __future__ import annotations

import itertools

import pytest

from sangsaeng.audit.accountants import PrvAccountant, RdpAccountant
from sangsaeng.audit.verify import tolerance
from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian

GRID = [Mechanism(noise_multiplier=sigma, sample_rate=q, steps=steps)
        for sigma, q, steps in itertools.product([0.7, 1.0, 1.5, 5.0], [0.01, 0.05, 0.1],
                                                 [1, 100, 600])]
# large tables: small q, many steps (a fixed coarse grid over-stated these)
SMALL_Q = [Mechanism(noise_multiplier=sigma, sample_rate=q, steps=steps)
           for sigma, q, steps in [(2.0, 1e-3, 10_000), (5.0, 0.004, 10_000),
                                   (3.0, 1e-3, 1000)]]


def assert_tight(history: list[Mechanism], delta: float) -> float:
    claimed = epsilon(history, delta)
    bounds = PrvAccountant.of(history).bounds(delta)
    assert bounds.lower <= claimed <= bounds.upper, (history, bounds)
    # At least the estimate, up to the two numerical methods' agreement: PRV's estimate is
    # only certified to ±0.01 (its ε error), and on single steps the two differ by < 4e-5.
    assert claimed >= bounds.estimate - 1e-4, (history, bounds)
    assert claimed - bounds.estimate <= max(0.01, 0.01 * bounds.estimate), (history, bounds)
    assert claimed <= RdpAccountant.of(history).epsilon(delta) + tolerance(claimed)
    return claimed


@pytest.mark.parametrize("delta, grid", [(1e-5, GRID), (1e-7, GRID[::4])])
def test_the_claim_is_tight_and_never_below_the_auditors_estimate(
        delta: float, grid: list[Mechanism]) -> None:
    compared = 0
    for m in grid:
        if assert_tight([m, gaussian(10.0)], delta) <= 20:
            compared += 1
    assert compared >= 0.7 * len(grid)


def test_small_sampling_rates_and_many_steps() -> None:
    for m in SMALL_Q:
        assert_tight([m, gaussian(100.0)], 1e-5)


def test_mixed_histories() -> None:
    """Several runs' mechanisms composed, as a ledger holds them."""
    history = [GRID[4], gaussian(10.0), GRID[13], gaussian(10.0), GRID[4], gaussian(3.0)]
    assert_tight(history, 1e-5)
    assert PrvAccountant().bounds(1e-5) == (0.0, 0.0, 0.0)
    assert RdpAccountant().epsilon(1e-5) == 0.0


def test_rdp_is_the_bound_older_releases_claimed() -> None:
    """Older ledgers' reports carry Opacus' RDP ε: the auditor's RDP recomputes it (so those
    claims pass the check's upper limit), with the orders Opacus uses by default."""
    import warnings

    from opacus.accountants import RDPAccountant

    from sangsaeng.audit.accountants.rdp import CLAIMED_ORDERS

    assert CLAIMED_ORDERS == RDPAccountant.DEFAULT_ALPHAS
    history = [GRID[4], gaussian(10.0)] * 5
    opacus = RDPAccountant()
    opacus.history = [(m.noise_multiplier, m.sample_rate, m.steps) for m in history]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        claimed_then = opacus.get_epsilon(1e-5)
    recomputed = RdpAccountant.of(history).epsilon(1e-5)
    assert abs(recomputed - claimed_then) <= tolerance(claimed_then)
    assert epsilon(history, 1e-5) < 0.95 * claimed_then


def test_a_history_far_past_any_cap_is_refused_by_its_grid_not_by_memory() -> None:
    """A partner reporting absurd mechanisms cannot make the auditor's PRV grid take its
    memory: the grid's size is checked before it is built."""
    from sangsaeng.audit.accountants import HistoryTooLarge

    absurd = PrvAccountant.of([Mechanism(noise_multiplier=0.05, sample_rate=0.5, steps=1000)])
    with pytest.raises(HistoryTooLarge, match="points"):
        absurd.bounds(1e-5)
