"""The DP-SGD steps' noise source (client/ghost_step.GaussianNoise): its values are N(0, 1)
— distribution, scale, tails — independent of each other, of the other value of their
Box-Muller pair, of the next step's and of another seed's; they are Box-Muller on the
documented words of the seeded stream; a seed replays them, and without one they come from
the OS. Fixed seeds make every assertion deterministic; the bounds are the tests' 0.1%
critical values or 4.5 standard errors, tight enough that a scale 1% off fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sangsaeng.client.ghost_step import GaussianNoise

DTYPES = [torch.float32, torch.float64]


def sample(dtype: torch.dtype, seed: int, draws: int = 20, size: int = 100_001) -> np.ndarray:
    noise = GaussianNoise(size, dtype, seed)
    return np.concatenate([noise.draw().numpy().astype(np.float64) for _ in range(draws)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_values_are_standard_normal(dtype: torch.dtype) -> None:
    """2,000,020 values: the empirical CDF within the KS test's 0.1% bound of Φ, the first
    four moments and the tail frequencies within 4.5 standard errors of N(0, 1)'s."""
    x = sample(dtype, seed=11)
    n = len(x)
    assert x.dtype == np.float64 and np.isfinite(x).all()
    ks = stats.kstest(x, "norm")
    assert ks.statistic < 1.95 / math.sqrt(n)  # the 0.1% critical value
    assert abs(x.mean()) < 4.5 / math.sqrt(n)
    assert abs(x.var() - 1) < 4.5 * math.sqrt(2 / n)
    assert abs(stats.skew(x)) < 4.5 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(x, fisher=False) - 3) < 4.5 * math.sqrt(24 / n)
    for k in (1, 2, 3, 4):  # two-sided tail mass, as often as a normal's
        p = 2 * stats.norm.sf(k)
        assert abs(np.mean(np.abs(x) > k) - p) < 4.5 * math.sqrt(p * (1 - p) / n), k
    assert x.max() > 4.5 and x.min() < -4.5  # the tails are there (P ≈ 0.99 each)


def test_a_wrong_scale_fails_the_distribution_test() -> None:
    """The test above has the power it claims: 1% too wide is caught."""
    x = sample(torch.float32, seed=11) * 1.01
    assert stats.kstest(x, "norm").statistic > 1.95 / math.sqrt(len(x))


def equal_probability_table(a: np.ndarray, b: np.ndarray, bins: int = 10) -> np.ndarray:
    """Counts of (a, b) in the bins × bins cells of equal probability under independent
    N(0, 1)s."""
    edges = stats.norm.ppf(np.linspace(0, 1, bins + 1)[1:-1])
    return np.histogram2d(np.digitize(a, edges), np.digitize(b, edges),
                          bins=bins, range=[[-0.5, bins - 0.5]] * 2)[0]


def assert_independent(a: np.ndarray, b: np.ndarray) -> None:
    """(a, b) fills the 100 cells of equal probability evenly (χ², 99 degrees of freedom,
    0.1% level), and neither a·b nor a²·b² is correlated (4.5 standard errors)."""
    table = equal_probability_table(a, b)
    chi2 = ((table - len(a) / table.size) ** 2 / (len(a) / table.size)).sum()
    assert chi2 < stats.chi2.ppf(0.999, table.size - 1)
    for f in (lambda v: v, np.square):
        assert abs(np.corrcoef(f(a), f(b))[0, 1]) < 4.5 / math.sqrt(len(a))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_two_values_of_a_pair_and_neighbours_are_independent(dtype: torch.dtype) -> None:
    """Box-Muller makes two values from one radius and angle: value i and value
    pairs + i. They, and neighbouring values, are independent N(0, 1)s."""
    size = 400_000
    noise = GaussianNoise(size, dtype, seed=5)
    x = noise.draw().numpy().astype(np.float64)
    half = size // 2
    assert_independent(x[:half], x[half:])  # the pairs
    assert_independent(x[:-1:2], x[1::2])  # neighbours


@pytest.mark.parametrize("size", [300_000, 1001])  # one step made per call; 16
def test_consecutive_steps_and_seeds_draw_independent_noise(size: int) -> None:
    """Value i of a step against value i of the next step (~300,000 pairs), and against
    another seed's."""
    def steps(seed: int) -> tuple[np.ndarray, np.ndarray]:
        noise = GaussianNoise(size, torch.float32, seed)
        draws = [noise.draw().numpy().astype(np.float64) for _ in range(2 * (300_000 // size))]
        return np.concatenate(draws[::2]), np.concatenate(draws[1::2])

    this, following = steps(21)
    assert_independent(this, following)
    assert_independent(this, steps(22)[0])


def test_a_seed_replays_the_noise_and_none_draws_from_the_os() -> None:
    def draws(seed: int | None, size: int = 1001) -> list[torch.Tensor]:
        noise = GaussianNoise(size, torch.float32, seed)
        return [noise.draw().clone() for _ in range(3)]

    replayed = draws(7)
    assert all(torch.equal(a, b) for a, b in zip(replayed, draws(7), strict=True))
    assert not torch.equal(replayed[0], replayed[1])  # each draw is new
    assert not torch.equal(draws(7)[0], draws(8)[0])
    # all of a seed counts: torch's generator kept only its low 32 bits
    assert not torch.equal(draws(7)[0], draws(7 + 2**32)[0])
    assert not torch.equal(draws(None)[0], draws(None)[0])


@pytest.mark.parametrize("size", [1, 2, 7, 92_162])
def test_any_size_is_filled(size: int) -> None:
    noise = GaussianNoise(size, torch.float64, seed=1)
    values = noise.draw()
    assert values.shape == (size,) and values.dtype == torch.float64
    assert values.data_ptr() == noise.values.data_ptr()
    assert torch.isfinite(values).all() and (values != 0).all()


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match="float32 or float64, not torch.bfloat16"):
        GaussianNoise(4, torch.bfloat16)


@pytest.mark.parametrize("size", [1001, 20_001])  # 16 steps made in one call; one
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_the_values_are_box_muller_on_the_seeded_words(size: int, dtype: torch.dtype,
                                                       tolerance: float) -> None:
    """What draw() computes, recomputed in float64 from its documented inputs: the seed's
    NOISE_STREAM child of a SeedSequence into SFC64; n = size · max(1, BATCH // size)
    values made at once, each step taking the next size of them; one word per uniform,
    U = (2j + 1)/2^(m+1) for j the top m bits, and values i and i + n/2 the cosine and sine
    values √(-2 ln U1)·(cos 2πU2, sin 2πU2) of pair i."""
    noise = GaussianNoise(size, dtype, seed=9)
    stream = np.random.SFC64(np.random.SeedSequence(9, spawn_key=(GaussianNoise.NOISE_STREAM,)))
    bits = 32 if dtype == torch.float32 else 64
    m = 23 if dtype == torch.float32 else 52
    steps = max(1, GaussianNoise.BATCH // size)
    pairs = (size * steps + 1) // 2
    for _ in range(2):  # the second batch goes on along the stream
        words = stream.random_raw(2 * pairs * bits // 64).view(f"u{bits // 8}")
        u = ((words >> (bits - m)).astype(np.float64) * 2 + 1) / 2.0 ** (m + 1)
        radius, angle = np.sqrt(-2 * np.log(u[:pairs])), 2 * math.pi * u[pairs:]
        made = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])
        for step in range(steps):
            drawn = noise.draw().numpy().astype(np.float64)
            expected = made[step * size:(step + 1) * size]
            np.testing.assert_allclose(drawn, expected, rtol=0, atol=tolerance)
