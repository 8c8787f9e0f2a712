"""PRV with Opacus (opacus/accountants/analysis/prv): the auditor's tight accountant, a
different library and a different numerical method from the partner's PLD accountant
(dp_accounting). It composes privacy loss random variables by FFT on a grid chosen from the
error wanted (Gopi, Lee, Wutschitz, "Numerical Composition of Differential Privacy",
NeurIPS 2021, arXiv:2106.02848), and gives an estimate of ε with certified bounds on both
sides: the true ε at δ lies in [lower, upper] (DiscretePRV.compute_epsilon).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from typing import NamedTuple

from sangsaeng.shared.accounting import Mechanism

from .base import Accountant
from .rdp import RdpAccountant

# ε error: 0.2 % of the RDP bound (an upper bound, so of at most ~0.25 % of the truth), within
# [5e-4, 0.01] (Opacus' default is 0.01: too coarse for small ε). δ error: Opacus' δ/1000.
EPSILON_ERROR_FRACTION, MIN_EPSILON_ERROR, MAX_EPSILON_ERROR = 2e-3, 5e-4, 1e-2
DELTA_ERROR_FRACTION = 1e-3
# Points of the PRV's grid. The mechanisms are composed one at a time into one running
# distribution (Opacus' PRVAccountant holds one grid per distinct mechanism at once), so
# memory is a few arrays of this size whatever the history (8 bytes a point).
MAX_GRID = 20_000_000


class HistoryTooLarge(ValueError):
    """The history's PRV needs a grid past MAX_GRID (ε far past any cap, or tens of
    millions of steps)."""


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
        """The estimate and its certified bounds; HistoryTooLarge, or Opacus' own
        ValueError / RuntimeError (δ too small for float64, a grid it cannot align), when
        it cannot."""
        if not self._steps:
            return Bounds(0.0, 0.0, 0.0)
        return _bounds(tuple(sorted(self._steps.items())), delta)


@functools.lru_cache(maxsize=256)
def _bounds(steps: tuple[tuple[tuple[float, float], int], ...], delta: float) -> Bounds:
    """Opacus' PRVAccountant._get_dprv, step by step (opacus 1.6.0, pinned): one domain for
    the whole history (its size and mesh from all the mechanisms), then each distinct
    (σ, q) discretised, self-composed by FFT and convolved into the running total.
    Composition commutes; Opacus convolves its self-composed parts pairwise too."""
    from opacus.accountants.analysis.prv import (  # ~1.4 s: only when auditing
        Domain,
        PoissonSubsampledGaussianPRV,
        TruncatedPrivacyRandomVariable,
        compose_heterogeneous,
        compute_safe_domain_size,
        discretize,
    )

    rdp = RdpAccountant.of(Mechanism(noise_multiplier=sigma, sample_rate=q, steps=n)
                           for (sigma, q), n in steps).epsilon(delta)
    eps_error = min(MAX_EPSILON_ERROR, max(MIN_EPSILON_ERROR, EPSILON_ERROR_FRACTION * rdp))
    delta_error = delta * DELTA_ERROR_FRACTION
    prvs = [PoissonSubsampledGaussianPRV(q, sigma) for (sigma, q), _ in steps]
    counts = [n for _, n in steps]
    with warnings.catch_warnings():
        # A Gaussian release (q = 1) makes the PRV's cdf take log(0) on a branch np.where
        # then discards, and the domain's RDP bound may warn that its largest order was
        # best: neither is news for an auditor's terminal.
        warnings.simplefilter("ignore")
        half_width = compute_safe_domain_size(prvs=prvs, max_self_compositions=counts,
                                              eps_error=eps_error, delta_error=delta_error)
        mesh = eps_error / math.sqrt(sum(counts) * math.log(12 / delta_error) / 2)
        if 2 * half_width / mesh > MAX_GRID:
            raise HistoryTooLarge(f"a grid of {2 * half_width / mesh:,.0f} points (at most "
                                  f"{MAX_GRID:,})")
        domain = Domain.create_aligned(-half_width, half_width, mesh)
        total = None
        for prv, n in zip(prvs, counts, strict=True):
            part = discretize(TruncatedPrivacyRandomVariable(prv, domain.t_min, domain.t_max),
                              domain)
            part = compose_heterogeneous([part], [n])
            total = part if total is None else compose_heterogeneous([total, part], [1, 1])
        assert total is not None
        lower, estimate, upper = total.compute_epsilon(delta, delta_error, eps_error)
    return Bounds(float(lower), float(estimate), float(upper))
