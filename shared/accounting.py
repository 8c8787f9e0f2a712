"""Privacy accounting for DP-SGD with Poisson sampling.

The history of mechanisms (noise multiplier sigma, sampling rate q, steps) is the single
source of truth; epsilon is always recomputed from the whole history by the accountant,
never added up from per-round or per-run epsilons.

The accountant composes privacy loss distributions (PLD) with Google's dp_accounting
(dp_accounting/pld/privacy_loss_distribution.py): the Poisson-subsampled Gaussian under
add-or-remove-one neighbours, both directions, the larger epsilon taken (Koskela, Jälkö,
Honkela, AISTATS 2020; Zhu, Dong, Wang, AISTATS 2022). Its epsilon is a certified upper
bound: the "connect the dots" discretisation is pessimistic, dominating the true PLD
(Doroshenko, Ghazi, Kamath, Kumar, Manurangsi, PETS 2022), and every mass that composition
truncates is moved to infinite loss (pld_pmf.DensePLDPmf.self_compose), so nothing is
rounded in the mechanism's favour. The RDP bound Sangsaeng used before is 10-15 % looser on
the same histories (docs/privacy-model.md). The auditor recomputes with a different library
and method, Opacus' PRV accountant, and with RDP (audit/accountants/).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from dp_accounting.pld.privacy_loss_distribution import PrivacyLossDistribution

MIN_GRID_WIDTH, MAX_GRID_WIDTH = 1e-5, 1e-3  # of the privacy loss grid (grid_width)
# The smallest δ accounted: FFT round-off in composition is ~1e-16 per bin, so a δ within a
# few orders of it can come out below the truth (measured at δ = 1e-13).
MIN_DELTA = 1e-9
EPSILON_TOLERANCE = 0.01  # noise_for_target lands this close below the target, as Opacus',
# or within 0.1 % of it for targets over 10
MIN_SEARCH_SIGMA = 0.25  # noise_for_target searches no lower (a policy's minimum is ~0.5-1)


class Mechanism(BaseModel):
    """`steps` runs of the sub-sampled Gaussian mechanism with the same (sigma, q)."""

    model_config = ConfigDict(frozen=True)

    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)


def gaussian(noise_multiplier: float) -> Mechanism:
    """One release of the (unsampled) Gaussian mechanism: the sampled one with q = 1."""
    return Mechanism(noise_multiplier=noise_multiplier, sample_rate=1.0, steps=1)


def round_mechanisms(noise_multiplier: float, sample_rate: float, steps: int,
                     evaluation_noise_multiplier: float | None) -> list[Mechanism]:
    """Everything one round spends: its DP-SGD steps (none in the base model's round 0)
    and its evaluation release (none in ledger entries from before evaluation was DP)."""
    training = Mechanism(noise_multiplier=noise_multiplier, sample_rate=sample_rate,
                         steps=steps)
    evaluation = evaluation_noise_multiplier
    return [training, *([gaussian(evaluation)] if evaluation else [])]


def grid_width(steps: Mapping[tuple[float, float], int]) -> float:
    """The loss grid for a history of these (σ, q) and their steps: a thirtieth of the
    narrowest step's spread of privacy loss, q·sqrt(exp(1/σ²) - 1) (the standard deviation
    of the sampled likelihood ratio), within [1e-5, 1e-3]. Any width gives an upper bound;
    too coarse a one for narrow steps over-states ε: at 1e-3, q = 0.001 and σ = 2 for 10,000
    steps gave 0.22 where the truth is 0.17. Narrow steps are cheap to grid finely, wide ones
    accurate on a coarse grid (measured: within 0.1 % of a 1e-5 grid on both). Only steps
    whose composed spread (spread·sqrt(steps)) is at least a tenth of the widest's set the
    grid: a release of negligible loss (an evaluation at σ 10⁶) adds under 1e-4 to ε on a
    coarse grid, where it would make the rest cost 100 times more on a fine one."""
    spread = {(sigma, q): q * math.sqrt(math.expm1(min(1 / sigma**2, 700.0)))
              for sigma, q in steps}
    composed = {pair: spread[pair] * math.sqrt(n) for pair, n in steps.items()}
    widest = max(composed.values())
    narrowest = min(spread[pair] for pair in steps if composed[pair] >= 0.1 * widest)
    return min(MAX_GRID_WIDTH, max(MIN_GRID_WIDTH, narrowest / 30))


@functools.lru_cache(maxsize=128)
def _step_pld(noise_multiplier: float, sample_rate: float,
              width: float) -> PrivacyLossDistribution:
    """The PLD of one Poisson-sampled Gaussian step (sensitivity 1: sigma is relative to
    the clipping norm). dp_accounting is imported here, not with this module: it costs
    ~0.4 s, and this module's types are used by processes that never account."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    return pld.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=sample_rate, pessimistic_estimate=True,
        use_connect_dots=True, value_discretization_interval=width)


def epsilon(history: Iterable[Mechanism], delta: float) -> float:
    """Epsilon at `delta` of the composition of every mechanism in `history`.

    Composition commutes, so a history of hundreds of ledger entries is the few distinct
    (sigma, q) it repeats, each with its total steps: one PLD per pair, self-composed by
    FFT (not step by step), then composed once."""
    if not MIN_DELTA <= delta < 1:
        raise ValueError(f"delta {delta:g} is outside [{MIN_DELTA:g}, 1): below it the PLD's "
                         "floating-point round-off is no longer negligible")
    steps: Counter[tuple[float, float]] = Counter()
    for m in history:
        if m.steps > 0:
            steps[m.noise_multiplier, m.sample_rate] += m.steps
    if not steps:
        return 0.0
    width = grid_width(steps)
    parts = [_step_pld(sigma, q, width).self_compose(n)
             for (sigma, q), n in sorted(steps.items())]
    total = functools.reduce(lambda a, b: a.compose(b), parts)
    return float(total.get_epsilon_for_delta(delta))


def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     fixed: tuple[Mechanism, ...] = ()) -> float:
    """A noise multiplier whose epsilon after `steps` is at most `target_epsilon` and
    within EPSILON_TOLERANCE of it (Opacus' get_noise_multiplier searches the same way),
    from MIN_SEARCH_SIGMA up.
    Epsilon falls as sigma grows: bracket, then bisect, always keeping the side that meets
    the target (checked by the accountant itself, so the answer holds even where the
    discretised epsilon is not exactly monotone)."""
    def eps(sigma: float) -> float:  # with the `fixed` mechanisms composed in
        return epsilon([Mechanism(noise_multiplier=sigma, sample_rate=sample_rate,
                                  steps=steps), *fixed], delta)

    low, high = 0.5, 1.0  # eps(low) > target >= eps(high) once bracketed
    for _ in range(64):
        if eps(high) > target_epsilon:
            low, high = high, high * 2
        elif eps(low) <= target_epsilon:
            if low <= MIN_SEARCH_SIGMA:  # lower grids a very wide PLD, for a target no cap allows
                raise ValueError(f"target epsilon {target_epsilon:g} needs no more noise than "
                                 f"a multiplier of {MIN_SEARCH_SIGMA:g}; give noise_multiplier "
                                 "instead")
            low, high = low / 2, low
        else:
            break
    else:
        raise ValueError(f"no noise multiplier reaches epsilon {target_epsilon:g}")
    tolerance = max(EPSILON_TOLERANCE, 1e-3 * target_epsilon)
    while target_epsilon - eps(high) > tolerance and high - low > 1e-9 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if eps(mid) > target_epsilon else (low, mid)
    return high


@dataclass(frozen=True)
class Spending:
    """What a dataset has spent: ε of every mechanism composed (`lifetime`), and of each
    run's own, by run id in order of first spend (runs compose by the accountant, so these
    do not add up to `lifetime`)."""

    lifetime: float
    runs: dict[str, float]


def spending(history: Iterable[tuple[str, Mechanism]], delta: float) -> Spending:
    """The one way Sangsaeng tells what a dataset has spent, from (run id, mechanism)
    pairs: a partner's ledger, or the coordinator's records of it."""
    items = list(history)
    by_run: dict[str, list[Mechanism]] = {}
    for run_id, mechanism in items:
        by_run.setdefault(run_id, []).append(mechanism)
    return Spending(lifetime=epsilon((m for _, m in items), delta),
                    runs={run_id: epsilon(ms, delta) for run_id, ms in by_run.items()})


class PrivacyReport(BaseModel):
    """What a partner reports after a local round: the mechanism it ran, the epsilon of its
    dataset in this run and over its whole life (both recomputed from the partner's ledger),
    and its cap. Crosses the client/server boundary."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    partner: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)
    evaluation_noise_multiplier: float = Field(gt=0)  # the round's evaluation release
    trained_parameters: int = Field(ge=1)  # coordinates the noise is added to
    delta: float = Field(gt=0, lt=1)
    epsilon: float = Field(ge=0)
    lifetime_epsilon: float = Field(ge=0)
    epsilon_cap: float = Field(gt=0)
    ledger_seq: int = Field(ge=1)  # the partner ledger's head after this round ...
    ledger_hash: str = Field(pattern="^[0-9a-f]{64}$")  # ... kept by the coordinator
