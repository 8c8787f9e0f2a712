"""The statistics of a one-run privacy audit: guesses on canaries, and the ε they prove.

Steinke, Nasr, Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023
(arXiv:2305.08846). m canaries are each included in the training data independently with
probability ½ (S ∈ {−1, +1}^m, uniform); after one run the auditor guesses T ∈ {−1, 0, +1}^m
from a score per canary: +1 ("in") on the k+ highest scores, −1 ("out") on the k− lowest,
0 (abstain) on the rest, r = k+ + k− guesses in all. If the mechanism is (ε, δ)-DP, the
number W of correct guesses satisfies (their Theorem 5.2 with Proposition 5.7 / Corollary
5.4; Appendix D gives the same computation as code)

    P[W ≥ v] ≤ P[Binomial(r, p) ≥ v] + 2mδ · max_{1≤i≤v} P[v − i ≤ Binomial(r, p) < v] / i,

with p = e^ε / (1 + e^ε), the accuracy of ε-DP randomized response. So if v correct guesses
have a p-value at most β under (ε, δ)-DP, the mechanism is not (ε, δ)-DP, with confidence
1 − β: the largest such ε is the lower bound. It only grows with v, and at v = r (every
guess right) and δ = 0 it is logit(β^(1/r)): r = 100 perfect guesses prove at most ε ≈ 3.5
at 95 %, r = 1,000 at most ≈ 5.8 — one run cannot prove more, whatever the mechanism.

Choosing k after seeing the scores would void the guarantee; here the guess counts are
fixed in advance and the bound is taken at each with confidence 1 − β / (number of counts)
(a union bound), so the largest of them holds at 1 − β.

Pure arithmetic (scipy's binomial): the audit role's own, used by the assembling layer that
runs the partner's training (sangsaeng/empirical/).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAX_EPSILON = 50.0  # search ceiling: e^50 / (1 + e^50) is 1 in double precision
BISECTIONS = 60


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """The largest probability an (ε, δ)-DP mechanism gives v or more correct guesses out of
    r, with m canaries (Steinke et al. 2023, Theorem 5.2 and Proposition 5.7)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m})")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("need epsilon >= 0 and 0 <= delta <= 1")
    from scipy.stats import binom  # ~0.4 s: only when bounding, not with every CLI command

    p = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, p))  # P[Binomial(r, p) >= v]
    if delta == 0 or v == 0:
        return min(tail, 1.0)
    # P[v - i <= Binomial < v] for i = 1..v, the mass just below v, cumulated downwards
    below = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, p))
    worst = float(np.max(below / np.arange(1, v + 1)))
    return min(tail + 2 * m * delta * worst, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, beta: float) -> float:
    """The largest ε at which v correct guesses out of r have a p-value at most `beta`:
    with confidence 1 − beta the mechanism is not (ε', δ)-DP for any ε' below it. 0 when
    even ε = 0 is not rejected. Bisection on ε (the p-value grows with it), returning the
    low end: never more than the exact answer."""
    if not 0 < beta < 1:
        raise ValueError("beta (1 - confidence) must lie in (0, 1)")
    if p_value(m, r, v, 0.0, delta) > beta:
        return 0.0
    low, high = 0.0, MAX_EPSILON
    if p_value(m, r, v, high, delta) <= beta:
        return high
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        low, high = (mid, high) if p_value(m, r, v, mid, delta) <= beta else (low, mid)
    return low


class Guesses(BaseModel):
    """One abstention scheme's outcome: guesses "in" on the k_plus highest scores and "out"
    on the k_minus lowest, how many were right, and the ε they prove at `confidence`
    (already divided among the schemes tried, see `best_bound`)."""

    model_config = ConfigDict(frozen=True)

    k_plus: int = Field(ge=0)
    k_minus: int = Field(ge=0)
    correct: int = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    epsilon: float = Field(ge=0)

    @property
    def guesses(self) -> int:
        return self.k_plus + self.k_minus


def correct_guesses(scores: np.ndarray, included: np.ndarray, k_plus: int,
                    k_minus: int) -> int:
    """Right guesses of "in" on the k_plus highest scores and "out" on the k_minus lowest.
    Ties are broken by index (a stable sort): the scores are continuous."""
    if k_plus + k_minus > len(scores):
        raise ValueError("more guesses than canaries")
    order = np.argsort(scores, kind="stable")
    top = order[len(order) - k_plus:] if k_plus else order[:0]
    return int(included[top].sum() + (~included[order[:k_minus]]).sum())


def guess_counts(m: int, fractions: Sequence[float]) -> list[int]:
    """The guess counts r tried, fixed before any score is seen: each fraction of m, even
    (half "in", half "out"), at least 2."""
    counts = sorted({max(2, 2 * round(f * m / 2)) for f in fractions})
    return [r for r in counts if r <= m]


def best_bound(scores: np.ndarray, included: np.ndarray, counts: Sequence[int],
               delta: float, confidence: float) -> tuple[Guesses, list[Guesses]]:
    """The bound at each guess count (k+ = k− = r/2) at confidence 1 − β/len(counts), and
    the largest: by the union bound it holds at `confidence` (1 − β)."""
    m = len(scores)
    share = (1 - confidence) / len(counts)
    results = []
    for r in counts:
        k_plus = r // 2
        v = correct_guesses(scores, included, k_plus, r - k_plus)
        results.append(Guesses(k_plus=k_plus, k_minus=r - k_plus, correct=v,
                               confidence=1 - share,
                               epsilon=epsilon_lower_bound(m, r, v, delta, share)))
    return max(results, key=lambda g: g.epsilon), results
