from __future__ import annotations

import pytest

from sangsaeng.shared.accounting import Mechanism, epsilon, noise_for_target

from ..support.tasks import opacus_live_epsilon

DELTA = 1e-5


def test_matches_opacus_over_mixed_history() -> None:
    history = [Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50),
               Mechanism(noise_multiplier=1.3, sample_rate=0.02, steps=120),
               Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)]
    ours = epsilon(history, DELTA)
    assert ours == pytest.approx(opacus_live_epsilon(history, DELTA), rel=0.01)


def test_composes_never_adds() -> None:
    round_ = Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)
    one, two, five = (epsilon([round_] * k, DELTA) for k in (1, 2, 5))
    assert 0 < one < two < five
    assert five < 5 * one  # RDP composition is sub-linear: summing per-round eps overstates


def test_empty_history_spends_nothing() -> None:
    assert epsilon([], DELTA) == 0.0
    assert epsilon([Mechanism(noise_multiplier=1.0, sample_rate=0.1, steps=0)], DELTA) == 0.0


def test_noise_for_target_stays_within_target() -> None:
    sigma = noise_for_target(3.0, DELTA, sample_rate=0.04, steps=500)
    eps = epsilon([Mechanism(noise_multiplier=sigma, sample_rate=0.04, steps=500)], DELTA)
    assert eps <= 3.0 and eps == pytest.approx(3.0, abs=0.05)


def test_mechanism_rejects_impossible_parameters() -> None:
    with pytest.raises(ValueError):
        Mechanism(noise_multiplier=0, sample_rate=0.1, steps=1)
    with pytest.raises(ValueError):
        Mechanism(noise_multiplier=1, sample_rate=1.5, steps=1)


@pytest.mark.parametrize("target, q, steps", [(0.5, 0.01, 100), (3.0, 0.04, 500),
                                              (8.0, 0.2, 40), (50.0, 0.5, 10)])
def test_noise_for_target_agrees_with_opacus(target: float, q: float, steps: int) -> None:
    from opacus.accountants.utils import get_noise_multiplier

    ours = noise_for_target(target, DELTA, sample_rate=q, steps=steps)
    theirs = get_noise_multiplier(target_epsilon=target, target_delta=DELTA, sample_rate=q,
                                  steps=steps, accountant="rdp")
    assert epsilon([Mechanism(noise_multiplier=ours, sample_rate=q, steps=steps)],
                   DELTA) <= target
    assert ours == pytest.approx(theirs, rel=0.01)
