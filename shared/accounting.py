"""Privacy accounting for DP-SGD with Poisson sampling.

The history of mechanisms (noise multiplier sigma, sampling rate q, steps) is the single
source of truth; epsilon is always recomputed from the whole history by the accountant,
never added up from per-round or per-run epsilons. The accountant is Opacus' RDP
accountant (Mironov, "Renyi Differential Privacy", 2017; Mironov, Talwar, Zhang, "Renyi
Differential Privacy of the Sampled Gaussian Mechanism", 2019), as in
opacus/accountants/rdp.py, with its default orders.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

ACCOUNTANT = "rdp"
PRIVACY_KEY = "privacy"  # the ConfigRecord holding a PrivacyReport in a train reply


class Mechanism(BaseModel):
    """`steps` runs of the sub-sampled Gaussian mechanism with the same (sigma, q)."""

    model_config = ConfigDict(frozen=True)

    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)


def epsilon(history: Iterable[Mechanism], delta: float) -> float:
    """Epsilon at `delta` of the composition of every mechanism in `history`."""
    from opacus.accountants import RDPAccountant  # import cost ~1.3 s: only when accounting

    accountant = RDPAccountant()
    accountant.history = [
        (m.noise_multiplier, m.sample_rate, m.steps) for m in history if m.steps > 0
    ]
    return float(accountant.get_epsilon(delta=delta)) if accountant.history else 0.0


def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """Smallest noise multiplier (to Opacus' search tolerance) keeping the run within target."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=ACCOUNTANT,
        )
    )


class PrivacyReport(BaseModel):
    """What a partner reports after a local round: the mechanism it ran, the epsilon of its
    dataset in this run and over its whole life (both recomputed from the partner's ledger),
    and its cap. Crosses the client/server boundary."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partner: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)
    delta: float = Field(gt=0, lt=1)
    epsilon: float = Field(ge=0)
    lifetime_epsilon: float = Field(ge=0)
    epsilon_cap: float = Field(gt=0)
    ledger_seq: int = Field(ge=1)  # the partner ledger's head after this round ...
    ledger_hash: str = Field(pattern="^[0-9a-f]{64}$")  # ... kept by the coordinator
