"""PRV with Opacus (opacus/accountants/prv.py): the auditor's tight accountant, a different
library and a different numerical method from the partner's PLD accountant (dp_accounting).
It composes privacy loss random variables by FFT on a grid chosen from the error wanted
(Gopi, Lee, Wutschitz, "Numerical Composition of Differential Privacy", NeurIPS 2021,
arXiv:2106.02848), and gives an estimate of ε with certified bounds on both sides: the
true ε at δ lies in [lower, upper] (Theorem 5.5 there; DiscretePRV.compute_epsilon).
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from typing import NamedTuple

from sangsaeng.shared.accounting import Mechanism

from .base import Accountant

# Opacus' defaults for PRVAccountant.get_epsilon: ε within ±0.01, δ within δ/1000.
EPSILON_ERROR = 0.01
DELTA_ERROR_FRACTION = 1e-3
MAX_GRID = 20_000_000  # points of the PRV's grid (8 bytes each, a few arrays of it)


class HistoryTooLarge(ValueError):
    """The history's PRV needs a grid past MAX_GRID: its ε is far past any cap."""


class Bounds(NamedTuple):
    lower: float  # the true ε is at least this ...
    estimate: float
    upper: float  # ... and at most this


class PrvAccountant(Accountant):
    def __init__(self) -> None:
        self._steps: Counter[tuple[float, float]] = Counter()

    def compose(self, mechanism: Mechanism) -> None:
        if mechanism.steps > 0:
            self._steps[mechanism.noise_multiplier, mechanism.sample_rate] += mechanism.steps

    def epsilon(self, delta: float) -> float:
        return self.bounds(delta).estimate

    def bounds(self, delta: float) -> Bounds:
        """The estimate and its certified bounds. Composition commutes: each distinct
        (σ, q) is one PRV self-composed its total steps (Opacus merges only neighbours)."""
        if not self._steps:
            return Bounds(0.0, 0.0, 0.0)
        return _bounds(tuple(sorted(self._steps.items())), delta)


@functools.lru_cache(maxsize=1024)
def _bounds(steps: tuple[tuple[tuple[float, float], int], ...], delta: float) -> Bounds:
    """An audit asks the same history again (a run's ε and the lifetime's, when one run
    is all there is): ~0.1 s each, once."""
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV
    from opacus.accountants.prv import PRVAccountant  # ~1.4 s: only when auditing

    accountant = PRVAccountant()
    accountant.history = [(sigma, q, n) for (sigma, q), n in steps]
    delta_error = delta * DELTA_ERROR_FRACTION
    with warnings.catch_warnings():
        # A Gaussian release (q = 1) makes the PRV's cdf take log(0) on a branch np.where
        # then discards, and the domain's RDP bound may warn that its largest order was
        # best: neither is news for an auditor's terminal.
        warnings.simplefilter("ignore")
        # The grid grows with ε and the steps; a history far past any cap (reported by a
        # hostile partner, say) would take the auditor's memory: refuse it by its size.
        # _get_domain and _get_dprv are what get_epsilon runs before it returns the upper
        # bound alone (opacus 1.6.0, pinned in pyproject.toml).
        domain = accountant._get_domain(
            prvs=[PoissonSubsampledGaussianPRV(q, sigma) for (sigma, q), _ in steps],
            num_self_compositions=[n for _, n in steps], eps_error=EPSILON_ERROR,
            delta_error=delta_error)
        if domain.size > MAX_GRID:
            raise HistoryTooLarge(f"a grid of {domain.size:,} points (at most {MAX_GRID:,})")
        composed = accountant._get_dprv(eps_error=EPSILON_ERROR, delta_error=delta_error)
        lower, estimate, upper = composed.compute_epsilon(delta, delta_error, EPSILON_ERROR)
    return Bounds(float(lower), float(estimate), float(upper))
