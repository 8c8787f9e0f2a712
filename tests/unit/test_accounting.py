"""The partner's accountant (PLD, dp_accounting): what it composes, and that it is tight
against Opacus' accountants on the same histories."""

from __future__ import annotations

import warnings

import pytest

from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian, noise_for_target

from ..support.tasks import opacus_live_epsilon

DELTA = 1e-5
# the demo's first run per partner: 5 rounds of 2 epochs of 24 steps (batch 64 on its
# public training size), each with its evaluation release
DEMO_RUN = [Mechanism(noise_multiplier=1.0, sample_rate=1 / 24, steps=48),
            gaussian(10.0)] * 5


def test_matches_opacus_over_mixed_history() -> None:
    """Opacus' PRV accountant stepped once per optimizer step: its certified upper bound
    is at most 0.02 above the true ε (its ε error 0.01 plus δ error), never below ours by
    more than that."""
    history = [Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50),
               Mechanism(noise_multiplier=1.3, sample_rate=0.02, steps=120),
               Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)]
    ours, prv_upper = epsilon(history, DELTA), opacus_live_epsilon(history, DELTA)
    assert ours <= prv_upper <= ours + 0.025


def test_tighter_than_rdp() -> None:
    """The RDP bound the partner claimed before (Opacus' RDPAccountant) is ~12 % looser on
    the demo's run; the PLD accountant spends less of the cap for the same training."""
    from opacus.accountants import RDPAccountant

    rdp = RDPAccountant()
    rdp.history = [(m.noise_multiplier, m.sample_rate, m.steps) for m in DEMO_RUN]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha"
        loose = rdp.get_epsilon(DELTA)
    tight = epsilon(DEMO_RUN, DELTA)
    assert (round(loose, 2), round(tight, 2)) == (4.94, 4.39)  # docs/privacy-model.md


def test_composes_never_adds() -> None:
    round_ = Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)
    one, two, five = (epsilon([round_] * k, DELTA) for k in (1, 2, 5))
    assert 0 < one < two < five
    assert five < 5 * one  # composition is sub-linear: summing per-round eps overstates


@pytest.mark.parametrize("sigma, q, steps", [(2.0, 1e-3, 10_000), (5.0, 0.004, 10_000),
                                             (3.0, 1e-3, 1000), (1.0, 1e-3, 100_000),
                                             (1.0, 1 / 24, 240), (0.8, 0.04, 2000)])
def test_the_grid_is_fine_enough_for_narrow_steps(sigma: float, q: float, steps: int) -> None:
    """A fixed 1e-3 loss grid over-stated small-q histories by up to 57 % (0.0475 for
    0.0303): the grid now follows the narrowest step. Against a 1e-5 grid: within 0.05 %."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    fine = pld.from_gaussian_mechanism(sigma, sampling_prob=q,
                                       value_discretization_interval=1e-5)
    truth = fine.self_compose(steps).get_epsilon_for_delta(DELTA)
    claimed = epsilon([Mechanism(noise_multiplier=sigma, sample_rate=q, steps=steps)], DELTA)
    assert truth <= claimed <= truth * 1.0005


def test_a_delta_below_the_floor_is_refused() -> None:
    """Below 1e-9, FFT round-off made ε come out under the truth (δ 1e-13, 1e-14)."""
    with pytest.raises(ValueError, match="delta 1e-13 is outside"):
        epsilon(DEMO_RUN, 1e-13)
    from sangsaeng.shared.task import TaskSpec

    from ..support.tasks import task_with

    with pytest.raises(ValueError, match="dp.delta"):
        task_with(dp={"delta": 1e-12})
    assert isinstance(task_with(dp={"delta": 1e-9}), TaskSpec)


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


def test_noise_for_target_searches_no_lower_than_its_floor() -> None:
    """A target no cap allows (ε 1000 at q = 1) drove the search to σ 0.025, whose PLD took a
    minute and 2 GB; now it is refused at once, and a reachable large target is found."""
    with pytest.raises(ValueError, match="needs no more noise than a multiplier of 0.25"):
        noise_for_target(1000.0, DELTA, sample_rate=1.0, steps=1)
    sigma = noise_for_target(50.0, DELTA, sample_rate=0.5, steps=10)
    assert 0.25 < sigma < 0.5


@pytest.mark.parametrize("target, q, steps", [(0.5, 0.01, 100), (3.0, 0.04, 500),
                                              (8.0, 0.2, 40), (20.0, 0.5, 10)])
def test_noise_for_target_needs_less_noise_than_rdp(target: float, q: float,
                                                    steps: int) -> None:
    """For the same target, the tight accountant lets training add less noise than Opacus'
    RDP-based search would, and the noise it picks still meets the target."""
    from opacus.accountants.utils import get_noise_multiplier

    ours = noise_for_target(target, DELTA, sample_rate=q, steps=steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rdp_sigma = get_noise_multiplier(target_epsilon=target, target_delta=DELTA,
                                         sample_rate=q, steps=steps, accountant="rdp")
    assert target - max(0.01, 1e-3 * target) <= epsilon(
        [Mechanism(noise_multiplier=ours, sample_rate=q, steps=steps)], DELTA) <= target
    assert ours < rdp_sigma


def test_a_release_of_negligible_loss_does_not_set_the_grid() -> None:
    """An evaluation at σ 10⁶ (tests use one) would otherwise make a 1e-5 grid of every
    training step; on the training's own grid it adds under 1e-4 to ε."""
    from sangsaeng.shared.accounting import grid_width

    training = Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)
    assert grid_width({(1.0, 0.04): 50, (1e6, 1.0): 1}) == grid_width({(1.0, 0.04): 50}) == 1e-3
    alone = epsilon([training], DELTA)
    assert alone <= epsilon([training, gaussian(1e6)], DELTA) <= alone + 1e-4
