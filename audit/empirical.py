"""What an empirical privacy audit found, as the report and the terminal show it.

The audit itself runs the partner's own DP training (sangsaeng/empirical/, which may import
the client; this role may not): here is only its result, the verdict, and the table.

The verdict is "fails" when an empirical lower bound on ε exceeds the ε the accountant
claims for the same mechanism: then, with the stated confidence, the code does not do what
it accounts (a bug, or a broken mechanism). Otherwise it is "consistent", never "passes":
a lower bound under the claim proves nothing about privacy, only that this test found no
contradiction.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator
from rich.console import Console
from rich.table import Table

from sangsaeng.shared.accounting import Mechanism, epsilon
from sangsaeng.shared.tables import numbers, print_table

from .one_run import Guesses, epsilon_lower_bound

Verdict = Literal["fails", "consistent"]
ThreatModel = Literal["white-box", "black-box"]

THREAT_MODELS: dict[ThreatModel, str] = {
    "white-box": "gradient-space Dirac canaries, clipped and noised by the partner's step; "
                 "the auditor sees every intermediate model",
    "black-box": "crafted input records (extreme feature patterns, a chosen label); "
                 "the auditor sees the final model only",
}


class CanaryAudit(BaseModel):
    """One training run with m canaries under one threat model, and what it proves."""

    model_config = ConfigDict(frozen=True)

    threat_model: ThreatModel
    canaries: int = Field(ge=1)  # m
    included: int = Field(ge=0)  # how many the seeded draw put in
    best: Guesses  # the guess count whose bound is largest
    tried: list[Guesses]  # every guess count, each at its share of the confidence
    epsilon_lower: float = Field(ge=0)  # = best.epsilon, at `confidence` overall
    seconds: float = Field(ge=0)  # wall time of the run and the scoring

    @property
    def description(self) -> str:
        return THREAT_MODELS[self.threat_model]


class EmpiricalAudit(BaseModel):
    """`sangsaeng audit empirical`'s result: the mechanism the partner's code ran, the ε
    its accountant claims and the auditor's own recomputation, and per threat model the ε
    one run proves at `confidence`."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    task_sha256: str
    mechanism: Mechanism  # every local step of every round, as one history entry
    rounds: int = Field(ge=1)
    max_grad_norm: float = Field(gt=0)
    delta: float
    confidence: float = Field(gt=0, lt=1)
    seed: int
    claimed_epsilon: float = Field(ge=0)  # the partner's accountant (shared/accounting.py)
    recomputed_epsilon: float | None  # the auditor's PRV accountant; None if it cannot grid
    audits: list[CanaryAudit]
    # Set only by the test-only fault injection (sangsaeng/empirical/faults.py): a result
    # from a deliberately broken mechanism says so.
    fault: str | None = None
    started_at: str
    seconds: float = Field(ge=0)

    @model_validator(mode="after")
    def _holds_together(self) -> EmpiricalAudit:
        """A result file is read back by the report: every figure in it must be what its
        own counts and mechanism give (an edited or mistaken file is refused, not shown)."""
        spent = 0.0
        for a in self.audits:
            if a.included > a.canaries or not a.tried or a.best not in a.tried:
                raise ValueError(f"{a.threat_model}: counts that do not hold together")
            for g in a.tried:
                spent += 1 - g.confidence
                bound = epsilon_lower_bound(a.canaries, g.guesses, g.correct, self.delta,
                                            1 - g.confidence) if g.correct <= g.guesses else 0
                if not g.correct <= g.guesses <= a.canaries or not math.isclose(
                        g.epsilon, bound, rel_tol=1e-9, abs_tol=1e-12):
                    raise ValueError(f"{a.threat_model}: a bound is not what its guesses give")
            if not a.epsilon_lower == a.best.epsilon == max(g.epsilon for g in a.tried):
                raise ValueError(f"{a.threat_model}: the best bound is not the largest")
        if spent > (1 - self.confidence) * (1 + 1e-9):
            raise ValueError("the bounds spend more than the stated confidence allows")
        claimed = epsilon([self.mechanism], self.delta)
        if not math.isclose(self.claimed_epsilon, claimed, rel_tol=1e-6):
            raise ValueError(f"claimed ε {self.claimed_epsilon} is not the accountant's "
                             f"{claimed:.6g} for the mechanism")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdicts(self) -> dict[ThreatModel, Verdict]:
        return {a.threat_model: verdict_of(self, a) for a in self.audits}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Verdict:
        return "fails" if "fails" in self.verdicts.values() else "consistent"


def verdict_of(audit: EmpiricalAudit, canary: CanaryAudit) -> Verdict:
    return "fails" if canary.epsilon_lower > audit.claimed_epsilon else "consistent"


def print_empirical(result: EmpiricalAudit, console: Console) -> None:
    m = result.mechanism
    console.print(f"{result.dataset}, task {result.task_sha256[:12]}: {m.steps} DP-SGD steps "
                  f"in {result.rounds} rounds")
    console.print(f"mechanism: σ {m.noise_multiplier:g}, q {m.sample_rate:.4g}, "
                  f"C {result.max_grad_norm:g}, δ {result.delta:g}")
    console.print(f"claimed ε {result.claimed_epsilon:.3f} (partner's PLD accountant); "
                  + (f"recomputed {result.recomputed_epsilon:.3f} (auditor's PRV)"
                     if result.recomputed_epsilon is not None else "PRV could not recompute"))
    if result.fault:
        console.print(f"[bold red]TEST FAULT ACTIVE: {result.fault}[/]")
    table = Table(title=f"ε lower bounds, one run each, {result.confidence:.0%} confidence")
    table.add_column("threat model", no_wrap=True)
    numbers(table, ["m", "in", "guesses", "right", "ε ≥", "s"])
    table.add_column("verdict", no_wrap=True)
    for a in result.audits:
        verdict = verdict_of(result, a)
        table.add_row(a.threat_model, str(a.canaries), str(a.included), str(a.best.guesses),
                      str(a.best.correct), f"{a.epsilon_lower:.3f}", f"{a.seconds:.1f}",
                      "[bold red]fails[/]" if verdict == "fails" else "consistent")
    print_table(console, table)
    for a in result.audits:
        console.print(f"[dim]{a.threat_model}: {a.description}[/]")
    if result.verdict == "fails":
        console.print("[bold red]audit fails: a lower bound exceeds the claimed ε, so the DP "
                      "code does not do what its accountant claims[/]")
    else:
        console.print("[bold]consistent[/]: no lower bound exceeds the claimed ε. A lower "
                      "bound cannot prove privacy; this test found no contradiction.")
