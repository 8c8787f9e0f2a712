"""The whole empirical audit: read and encode the data as the partner does, plan the
mechanism, run one training per threat model with its canaries, score, guess, bound."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sangsaeng.audit.accountants import HistoryTooLarge, PrvAccountant
from sangsaeng.audit.empirical import CanaryAudit, EmpiricalAudit, ThreatModel
from sangsaeng.audit.one_run import best_bound, guess_counts
from sangsaeng.client.data import read_table
from sangsaeng.client.dp_sgd import PlanLimits, expected_batch_size, plan
from sangsaeng.shared.accounting import Mechanism, epsilon
from sangsaeng.shared.preprocess import encode
from sangsaeng.shared.task import TaskSpec

from . import black_box, faults, white_box
from .canaries import draw_included
from .training import AuditedRun

# Guess counts tried, as shares of m, fixed before any score is seen (audit/one_run.py):
# few canaries guessed well prove more when the mechanism leaks little, all of them
# when it leaks a lot.
GUESS_SHARES = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
DEFAULT_CANARIES = 1000
MAX_CANARIES = 100_000
MAX_CANARY_VALUES = 50_000_000  # white-box canaries' gradients, m × parameters (200 MB)
MAX_ROW_STEPS = 1_000_000_000  # rows clipped over a run: ~8 minutes on a 2-core machine

# Progress: (threat model, steps done, steps in all)
Progress = Callable[[ThreatModel, int, int], None]


class AuditSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    threat_models: tuple[ThreatModel, ...] = ("white-box", "black-box")
    canaries: int = Field(default=DEFAULT_CANARIES, ge=10, le=MAX_CANARIES)
    # below 0.9, "fails" would be wrong too often to prove anything
    confidence: float = Field(default=0.95, ge=0.9, lt=1)
    seed: int | None = Field(default=None, ge=0, lt=2**63)  # None: from the OS, recorded


class AuditError(ValueError):
    """The task or data cannot be audited; says why in terms of the task."""


class Planning(BaseModel):
    """What the partner plans from besides the task: its policy's limits and the public
    row count it declares (client/client_app.py plans from the same); by default no limits
    and the data's own row count."""

    model_config = ConfigDict(frozen=True)

    limits: PlanLimits = Field(default_factory=PlanLimits)
    public_rows: int | None = Field(default=None, ge=1)


def load_rows(task: TaskSpec, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled row of the partner's file, read and encoded as the client does."""
    if task.model.text:
        raise AuditError("the empirical audit runs on tabular tasks (logreg, mlp); this "
                         "task's model is a text-classifier")
    x, y, labelled = encode(read_table(data), task)
    return x[labelled], y[labelled]


def audited_run(task: TaskSpec, rows: int, canaries: int, seed: int,
                planning: Planning | None = None) -> AuditedRun:
    """The partner's plan for its rows with the canaries' expected count (m/2) added: a
    count fixed before the draw, so the mechanism is the same whichever are in."""
    planning = planning or Planning()
    public = (planning.public_rows or rows) + canaries // 2
    mechanism = plan(task, public, planning.limits)
    return AuditedRun(task, mechanism, expected_batch_size(task, mechanism, public), seed)


def run_audit(task: TaskSpec, data: Path, settings: AuditSettings | None = None,
              progress: Progress | None = None, planning: Planning | None = None
              ) -> EmpiricalAudit:
    settings = settings or AuditSettings()
    seed = secrets.randbits(63) if settings.seed is None else settings.seed
    started, clock = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.perf_counter()
    x, y = load_rows(task, data)
    m = settings.canaries
    run = audited_run(task, len(y), m, seed, planning)
    whole = Mechanism(noise_multiplier=run.mechanism.noise_multiplier,
                      sample_rate=run.mechanism.sample_rate, steps=run.steps)
    _check_cost(run, len(y), m, settings.threat_models)
    # Each threat model's bound holds at 1 − β/k (k threat models): "fails" by either one
    # is then wrong with probability at most β, as the stated confidence promises.
    share = 1 - (1 - settings.confidence) / len(settings.threat_models)
    audits = [_one(run, threat, x, y, m, share, progress)
              for threat in settings.threat_models]
    return EmpiricalAudit(
        dataset=task.dataset, task_sha256=task.sha256(), mechanism=whole, rounds=task.rounds,
        max_grad_norm=task.dp.max_grad_norm, delta=task.dp.delta,
        confidence=settings.confidence, seed=seed,
        claimed_epsilon=epsilon([whole], task.dp.delta),
        recomputed_epsilon=_recomputed(whole, task.dp.delta), audits=audits,
        fault=faults.active, started_at=started, seconds=time.perf_counter() - clock)


def _one(run: AuditedRun, threat: ThreatModel, x: np.ndarray, y: np.ndarray, m: int,
         confidence: float, progress: Progress | None) -> CanaryAudit:
    clock = time.perf_counter()
    module = white_box if threat == "white-box" else black_box
    included = draw_included(run.seed, module.STREAM, m)
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(threat, done, run.steps)

    scores = module.scores(run, x, y, included, advance)
    if not np.isfinite(scores).all():  # guesses on NaN would be no guesses at all
        raise AuditError(f"the {threat} scores are not all finite: this task's training "
                         "cannot be audited (its model diverged, or never moved)")
    best, tried = best_bound(scores, included, guess_counts(m, GUESS_SHARES), run.task.dp.delta,
                             confidence)
    return CanaryAudit(threat_model=threat, canaries=m, included=int(included.sum()), best=best,
                       tried=tried, epsilon_lower=best.epsilon,
                       seconds=time.perf_counter() - clock)


def _check_cost(run: AuditedRun, rows: int, m: int, threats: Sequence[ThreatModel]) -> None:
    """Refuse, before any work, an audit this machine should not try: more white-box
    canaries than coordinates, their gradients past MAX_CANARY_VALUES, or more than
    MAX_ROW_STEPS rows clipped over the run (minutes on a laptop core)."""
    if "white-box" in threats:
        parameters = white_box.parameter_count(run)
        if parameters < m:
            raise AuditError(f"the task's model has {parameters} parameters: too few for {m} "
                             f"white-box canaries (one coordinate each); give --canaries "
                             f"{parameters} or less, or --threat black-box")
        if m * parameters > MAX_CANARY_VALUES:
            raise AuditError(f"{m} white-box canaries on {parameters} parameters hold "
                             f"{m * parameters:,} values, over {MAX_CANARY_VALUES:,}: give "
                             f"--canaries {max(10, MAX_CANARY_VALUES // parameters)} or less")
    work = run.steps * run.batch_size * (2 if "white-box" in threats else 1) \
        + run.steps * min(rows, white_box.EXPECTATION_ROWS) * ("white-box" in threats)
    if work > MAX_ROW_STEPS:
        raise AuditError(f"this training clips about {work:,} rows over its steps, over "
                         f"{MAX_ROW_STEPS:,}: too long for one machine (fewer rounds, "
                         "epochs or a larger batch make it shorter)")


def _recomputed(mechanism: Mechanism, delta: float) -> float | None:
    """The auditor's own accountant on the same mechanism (Opacus' PRV)."""
    try:
        return PrvAccountant.of([mechanism]).epsilon(delta)
    except HistoryTooLarge:
        return None


def threat_models(names: Sequence[str]) -> tuple[ThreatModel, ...]:
    known: dict[str, ThreatModel] = {"white-box": "white-box", "black-box": "black-box"}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise AuditError(f"unknown threat model '{unknown[0]}': white-box or black-box")
    return tuple(dict.fromkeys(known[n] for n in names))
