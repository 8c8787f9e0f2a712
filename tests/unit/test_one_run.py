"""The one-run audit's bound (audit/one_run.py) against values computed directly and the
values Steinke, Nasr, Jagielski (2023, arXiv:2305.08846) print."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sangsaeng.audit.one_run import (
    best_bound,
    correct_guesses,
    epsilon_lower_bound,
    guess_counts,
    p_value,
)


def binomial_tail(r: int, v: int, p: float) -> float:
    """P[Binomial(r, p) >= v], term by term in exact binomial coefficients."""
    return math.fsum(math.comb(r, k) * p**k * (1 - p) ** (r - k) for k in range(v, r + 1))


def direct_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Theorem 5.2 with Proposition 5.7, written out: the tail plus 2mδ times the largest
    mean mass of the i values just below v."""
    p = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, k) * p**k * (1 - p) ** (r - k) for k in range(r + 1)]
    worst = max(math.fsum(pmf[v - i:v]) / i for i in range(1, v + 1)) if v else 0.0
    return min(1.0, binomial_tail(r, v, p) + 2 * m * delta * worst)


@pytest.mark.parametrize("r", [10, 100, 1000])
def test_all_correct_without_delta_proves_the_logit_of_the_confidence_root(r: int) -> None:
    """r right guesses of r: P[W = r] = p^r <= β exactly when p <= β^(1/r), so the bound is
    logit(β^(1/r)) (3.49 for r = 100 at 95 %)."""
    beta = 0.05
    root = beta ** (1 / r)
    assert epsilon_lower_bound(r, r, r, 0.0, beta) == pytest.approx(
        math.log(root / (1 - root)), abs=1e-9)
    assert binomial_tail(r, r, root) == pytest.approx(beta)


@pytest.mark.parametrize("m, r, v, eps, delta", [
    (100, 100, 75, math.log(3), 0.0), (1000, 100, 75, 0.5, 1e-4), (500, 60, 60, 2.0, 1e-5),
    (2000, 300, 200, 0.3, 1e-5), (50, 20, 0, 1.0, 1e-3)])
def test_p_value_matches_the_binomial_computed_directly(m: int, r: int, v: int, eps: float,
                                                        delta: float) -> None:
    assert p_value(m, r, v, eps, delta) == pytest.approx(direct_p_value(m, r, v, eps, delta),
                                                         rel=1e-9, abs=1e-15)


def test_the_bound_is_where_the_direct_p_value_crosses_the_confidence() -> None:
    m, r, v, delta, beta = 1000, 200, 170, 1e-5, 0.05
    eps = epsilon_lower_bound(m, r, v, delta, beta)
    # (within the two computations' round-off)
    assert direct_p_value(m, r, v, eps, delta) <= beta * (1 + 1e-9)
    assert direct_p_value(m, r, v, eps + 1e-6, delta) > beta


@pytest.mark.parametrize("m, r, v, delta, published", [
    (1000, 100, 75, 1e-4, 0.673),  # Appendix D's example
    (100_000, 1510, 1439, 1e-5, 2.675)])  # §7, the white-box audit's figure
def test_the_papers_printed_bounds(m: int, r: int, v: int, delta: float,
                                   published: float) -> None:
    assert epsilon_lower_bound(m, r, v, delta, 0.05) == pytest.approx(published, abs=1e-3)


def test_p_value_of_the_papers_example() -> None:
    """75 of 100 right is what ε = log 3 randomized response gets on average: p ≈ 0.55."""
    assert p_value(100, 100, 75, math.log(3), 0.0) == pytest.approx(0.553, abs=1e-3)


def test_chance_level_guessing_proves_nothing() -> None:
    assert epsilon_lower_bound(1000, 100, 50, 1e-5, 0.05) == 0.0


def test_delta_weakens_the_bound() -> None:
    assert (epsilon_lower_bound(1000, 300, 300, 1e-4, 0.05)
            < epsilon_lower_bound(1000, 300, 300, 0.0, 0.05))


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="correct"):
        p_value(10, 20, 5, 1.0, 0.0)
    with pytest.raises(ValueError, match="beta"):
        epsilon_lower_bound(10, 10, 5, 0.0, 1.5)


def test_guesses_take_the_highest_as_in_and_the_lowest_as_out() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.3])
    included = np.array([True, False, True, False, False, True])
    assert correct_guesses(scores, included, 1, 1) == 2  # 0.9 in (right), 0.1 out (right)
    assert correct_guesses(scores, included, 2, 2) == 3  # 0.8 in (wrong), 0.2 out (right)
    assert correct_guesses(scores, included, 0, 3) == 2  # 0.1, 0.2 right; 0.3 wrong


def test_guess_counts_are_even_distinct_and_at_most_m() -> None:
    assert guess_counts(1000, (0.02, 0.05, 0.5, 1.0)) == [20, 50, 500, 1000]
    assert guess_counts(10, (0.01, 0.02, 1.0)) == [2, 10]


def test_the_best_bound_divides_the_confidence_among_the_counts_tried() -> None:
    rng = np.random.default_rng(0)
    included = rng.random(400) < 0.5
    scores = included + rng.normal(0, 0.5, 400)
    best, tried = best_bound(scores, included, [20, 100, 400], 1e-5, 0.95)
    assert [g.guesses for g in tried] == [20, 100, 400]
    assert all(g.confidence == pytest.approx(1 - 0.05 / 3) for g in tried)
    assert best.epsilon == max(g.epsilon for g in tried) > 0
    for g in tried:
        assert g.epsilon == epsilon_lower_bound(400, g.guesses, g.correct, 1e-5, 0.05 / 3)
