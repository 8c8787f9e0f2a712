"""Privacy accounting for DP-SGD with Poisson sampling.

The history of mechanisms (noise multiplier sigma, sampling rate q, steps) is the single
source of truth; epsilon is always recomputed from the whole history by the accountant,
never added up from per-round or per-run epsilons. The accountant is Opacus' RDP
accountant (Mironov, "Renyi Differential Privacy", 2017; Mironov, Talwar, Zhang, "Renyi
Differential Privacy of the Sampled Gaussian Mechanism", 2019), as in
opacus/accountants/rdp.py, with its default orders.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# RDPAccountant.DEFAULT_ALPHAS (opacus/accountants/rdp.py): the orders epsilon is taken over
ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))
EPSILON_TOLERANCE = 0.01  # noise_for_target lands this close below the target, as Opacus'


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


@functools.cache
def _opacus_rdp() -> ModuleType:
    """Opacus' RDP analysis (opacus/accountants/analysis/rdp.py), loaded on its own.

    `import opacus...` first runs opacus/__init__, which loads Opacus' whole training
    stack (torch.distributed, sympy, scipy.stats): ~1.3 s in every ClientApp process, and
    Flower starts one per message. The analysis module needs only numpy and scipy.special.
    """
    package = importlib.util.find_spec("opacus")  # locates it without running __init__
    if package is None or not package.submodule_search_locations:
        raise ImportError("opacus is not installed")
    path = f"{package.submodule_search_locations[0]}/accountants/analysis/rdp.py"
    spec = importlib.util.spec_from_file_location("sangsaeng_opacus_rdp", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=256)
def _rdp_of_one_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one sampled Gaussian step at each of ORDERS. compute_rdp is this times the
    steps (opacus/accountants/analysis/rdp.py), and a ledger's history repeats the same
    (q, σ) round after round: one evaluation (~65 ms, the fractional orders' series) per
    pair instead of one per history entry and per question asked of the ledger."""
    rdp = _opacus_rdp().compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier,
                                    steps=1, orders=ORDERS)
    rdp.setflags(write=False)  # shared by every caller
    return rdp


def epsilon(history: Iterable[Mechanism], delta: float) -> float:
    """Epsilon at `delta` of the composition of every mechanism in `history`: what
    Opacus' RDPAccountant.get_epsilon returns for this history (its code, its orders)."""
    rdp = [_rdp_of_one_step(m.sample_rate, m.noise_multiplier) * m.steps
           for m in history if m.steps > 0]
    if not rdp:
        return 0.0
    eps, _ = _opacus_rdp().get_privacy_spent(orders=ORDERS, rdp=sum(rdp), delta=delta)
    return float(eps)


def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     fixed: tuple[Mechanism, ...] = ()) -> float:
    """A noise multiplier whose epsilon after `steps` is at most `target_epsilon` and
    within EPSILON_TOLERANCE of it (Opacus' get_noise_multiplier searches the same way,
    but importing it loads all of Opacus). Epsilon falls as sigma grows: bracket, then
    bisect, always keeping the side that meets the target."""
    def eps(sigma: float) -> float:  # with the `fixed` mechanisms composed in
        return epsilon([Mechanism(noise_multiplier=sigma, sample_rate=sample_rate,
                                  steps=steps), *fixed], delta)

    low, high = 0.5, 1.0  # eps(low) > target >= eps(high) once bracketed
    for _ in range(64):
        if eps(high) > target_epsilon:
            low, high = high, high * 2
        elif eps(low) <= target_epsilon:
            low, high = low / 2, low
        else:
            break
    else:
        raise ValueError(f"no noise multiplier reaches epsilon {target_epsilon:g}")
    while target_epsilon - eps(high) > EPSILON_TOLERANCE and high - low > 1e-9 * high:
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
