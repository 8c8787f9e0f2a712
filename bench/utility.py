"""Utility: what a federated DP model reaches for its ε, against non-private centralized
training of the same model on the same rows; then what each training choice adds.

    .venv/bin/python bench/utility.py [--seeds 12] [--quick]

Two real tables from ISLP's wheel: Caravan (the demo's task, 5,822 insurance customers,
6 % buyers) and Default (10,000 credit-card holders, 3.3 % defaults; simulated data, as
ISLR says). Each seed shuffles the table into 3 partners' slices and each partner holds
out 20 % of its rows by a keyed hash of their content (client/data.holdout_rows, a key per
seed), as partners do. Every number is a median over the seeds of the AUC on the pooled
holdout rows.

Federated DP runs the partners' and the coordinator's own code in one process (what the
transport adds is in bench/round.py): each partner plans its round with its policy's
limits — the demo's — from its public row count (client/dp_sgd.plan), trains the global
model with it (client/dp_sgd.train: the ghost step, Poisson sampling, its class weights
and learning-rate schedule) and replies with the weights and its public size, as its
ClientApp does; the coordinator averages by those sizes (Flower's aggregate_arrayrecords,
which RecordingFedAvg's FedAvg calls) and takes the task's server optimizer step
(server/flower/strategy.next_global). ε is per partner for the whole run, every round's
training and its evaluation release, recomputed by the accountant (shared/accounting.py)
from what the partner planned; the largest of the three is shown.

Centralized is plain SGD on the pooled training rows from the same start
(demo/baseline.centralized_model), the best by median AUC of the demo's baseline recipes
(demo/baseline.RECIPES, the first the demo task's old training), so the ratio does not
flatter DP.

Then, on Caravan at ε = 5, what each training choice adds: the demo task's training before
this benchmark, each change that made it what it is, and choices that were tried and not
taken, with the median per-seed gain (the seeds pair the runs: same partners, holdouts and
noise draws) and in how many seeds it was a gain.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from flwr.app import ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from sangsaeng.client import dp_sgd
from sangsaeng.client.data import LocalData, holdout_rows
from sangsaeng.client.policy import DatasetPolicy
from sangsaeng.demo import data as demo_data
from sangsaeng.demo.baseline import RECIPES, centralized_model, pooled_holdout_scores
from sangsaeng.server.flower.server_optimizer import ServerOptimizer
from sangsaeng.server.flower.strategy import next_global
from sangsaeng.shared import wire
from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian
from sangsaeng.shared.models import build_model
from sangsaeng.shared.preprocess import encode
from sangsaeng.shared.task import TaskSpec, load_task

PARTNERS = 3
HOLDOUT = 0.2  # a partner's default holdout_fraction
EPSILONS = (1.0, 3.0, 5.0, 8.0)
# the demo partners' policies (demo/data.py, write_policy)
LIMITS = dp_sgd.PlanLimits(max_sample_rate=demo_data.MAX_SAMPLE_RATE,
                           max_local_epochs=demo_data.MAX_LOCAL_EPOCHS)
# theirs before this benchmark: a policy's max_local_epochs by default
OLD_LIMITS = dp_sgd.PlanLimits(
    max_sample_rate=0.1, max_local_epochs=DatasetPolicy.model_fields["max_local_epochs"].default)


@dataclass(frozen=True)
class Dataset:
    name: str
    task: TaskSpec
    table: pd.DataFrame
    x: np.ndarray
    y: np.ndarray


def default_task(demo: TaskSpec) -> TaskSpec:
    """Default's task: the demo task's model and training (without Caravan's class
    weights), its own columns. The declared ranges are what a card issuer would publish
    for the columns (balance up to $3,000, yearly income up to $80,000), not statistics
    of the rows."""
    return TaskSpec.from_dict({
        **demo.model_dump(), "dataset": "default", "class_weights": None,
        "features": [{"kind": "categorical", "name": "student", "categories": ["No", "Yes"]},
                     {"name": "balance", "min": 0, "max": 3000},
                     {"name": "income", "min": 0, "max": 80_000}],
        "target": {"name": "default", "classes": ["No", "Yes"]}})


@functools.cache
def datasets() -> list[Dataset]:
    demo = load_task(demo_data.default_task_path())
    tables = {"caravan": (demo, demo_data.caravan_table()),
              "default": (default_task(demo), pd.read_csv(demo_data.islp_path("Default.csv")))}
    out = []
    for name, (task, table) in tables.items():
        x, y, labelled = encode(table, task)
        assert labelled.all()
        out.append(Dataset(name, task, table, x, y))
    return out


def partners(data: Dataset, seed: int) -> list[LocalData]:
    """The table in 3 shuffled slices, each with the rows its holdout key holds out."""
    order = np.random.default_rng(seed).permutation(len(data.y))
    key = f"{seed:064x}"  # the partners' secret holdout key, one per seed here
    parts = []
    for rows in np.array_split(order, PARTNERS):
        rows = np.sort(rows)
        held = holdout_rows(data.table.iloc[rows].reset_index(drop=True), key, HOLDOUT)
        x, y = data.x[rows], data.y[rows]
        parts.append(LocalData(x[~held], y[~held], x[held], y[held]))
    return parts


def public_train_rows(part: LocalData) -> int:
    """What the partner's policy plans from: its published size (its rows to the nearest
    hundred, demo/data.public_rows) less the holdout (DatasetPolicy.public_train_rows)."""
    rows = max(100, round((len(part.y_train) + len(part.y_holdout)) / 100) * 100)
    return max(1, round(rows * (1 - HOLDOUT)))


@dataclass(frozen=True)
class Run:
    auc: float
    epsilon: float  # the largest partner's, whole run
    mechanism: Mechanism  # the first partner's


PLANS: dict[tuple[str, int, dp_sgd.PlanLimits, int], Mechanism] = {}


def plan(task: TaskSpec, n: int) -> Mechanism:
    """dp_sgd.plan with the demo partners' limits, once per task and size (as a partner
    plans once per run)."""
    key = (task.to_json(), n, LIMITS, dp_sgd.RUN_STEPS)
    if key not in PLANS:
        PLANS[key] = dp_sgd.plan(task, n, LIMITS)
    return PLANS[key]


def federated(task: TaskSpec, parts: list[LocalData], seed: int) -> Run:
    """The run as the partners and the ServerApp compute it (see the module's notes)."""
    sizes = [public_train_rows(p) for p in parts]
    plans = {n: plan(task, n) for n in set(sizes)}
    optimizer = ServerOptimizer(task.server_optimizer)
    global_model = ArrayRecord(build_model(task, seed=task.seed).state_dict())
    for round_ in range(1, task.rounds + 1):
        replies = []
        for i, (part, n) in enumerate(zip(parts, sizes, strict=True)):
            model = build_model(task)
            model.load_state_dict(global_model.to_torch_state_dict())
            dp_sgd.train(model, part.x_train, part.y_train, task, plans[n],
                         seed=seed * 1000 + round_ * 10 + i, round_=round_,
                         batch_size=dp_sgd.expected_batch_size(task, plans[n], n))
            replies.append(RecordDict({wire.ARRAYS: ArrayRecord(model.state_dict()),
                                       wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: n})}))
        averaged = aggregate_arrayrecords(replies, wire.NUM_EXAMPLES)
        global_model = next_global(optimizer, global_model, averaged)
    model = build_model(task)
    model.load_state_dict(global_model.to_torch_state_dict())
    _, auc = pooled_holdout_scores(parts, model)
    assert auc is not None
    spent = max(epsilon([m, gaussian(task.dp.evaluation_noise_multiplier)] * task.rounds,
                        task.dp.delta) for m in plans.values())
    return Run(auc, spent, plans[sizes[0]])


def centralized(data: Dataset, seeds: int) -> tuple[float, str]:
    """The best recipe's median AUC over the seeds, and the recipe."""
    results = []
    for lr, epochs in RECIPES:
        aucs = []
        for seed in range(seeds):
            parts = partners(data, seed)
            model = centralized_model(data.task, parts, epochs=epochs, batch_size=64,
                                      learning_rate=lr, seed=seed)
            aucs.append(pooled_holdout_scores(parts, model)[1] or 0.0)
        results.append((statistics.median(aucs), f"lr {lr:g}, {epochs} epochs"))
    return max(results)


def with_epsilon(task: TaskSpec, target: float) -> TaskSpec:
    return task.model_copy(update={"dp": task.dp.model_copy(update={
        "noise_multiplier": None, "target_epsilon": target})})


def describe(m: Mechanism, n: int) -> str:
    return f"{m.noise_multiplier:.2f} | {m.sample_rate * n:.0f} | {m.steps}"


Change = Callable[[TaskSpec], TaskSpec]


def update(**fields: object) -> Change:
    """Set top-level task fields; a dict merges into the field's current value."""
    def change(task: TaskSpec) -> TaskSpec:
        data = task.model_dump()
        for key, value in fields.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) else value
        return TaskSpec.from_dict(data)
    return change


# The demo task's training before this benchmark: batch 64, 2 local epochs a round, 5
# rounds, learning rate 1, FedAvg, no class weights.
BEFORE = update(batch_size=64, local_epochs=2, rounds=5, learning_rate=1.0,
                server_optimizer={"kind": "sgd", "learning_rate": 1.0, "momentum": 0.0},
                learning_rate_schedule={"kind": "constant"}, class_weights=None)
# Now: the demo task's training with its batch and epochs left to each partner's planner
# (the demo fixes the ones its partners plan for ε ≈ 4.7).
PLANNED = update(batch_size=None, local_epochs=None)
# (target ε, evaluation noise multiplier: None for the task's)
TARGETS = ((1.0, None), (1.0, 30.0), (3.0, None), (5.0, None), (8.0, None))


def utility_table(seeds: int, targets: tuple[tuple[float, float | None], ...]) -> None:
    print(f"### Federated DP against centralized non-private, median of {seeds} seeds\n")
    print("Each partner runs the demo task's training (`sangsaeng/demo/caravan.toml`) with "
          "its batch and epochs left to the planner, for the target ε; \"before\" is the "
          "demo task's training before this benchmark (batch 64, 2 local epochs a round) "
          "for the same target. σ, expected batch and steps are one partner's round as it "
          "plans them; ε is the whole run's, evaluation releases included (noise multiplier "
          "10 unless the row says otherwise), the largest partner's.\n")
    print("| dataset | ε target | ε run | of it, evaluations alone | σ | batch | steps a round "
          "| rounds | before: DP AUC | federated DP AUC | centralized AUC | DP / centralized |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for data in datasets():
        central, recipe = centralized(data, seeds)
        n = public_train_rows(partners(data, 0)[0])
        for target, evaluation in targets:
            task = with_epsilon(data.task, target)
            label = f"{target:g}"
            if evaluation is not None:
                task = task.model_copy(update={"dp": task.dp.model_copy(update={
                    "evaluation_noise_multiplier": evaluation})})
                label += f" (evaluations at σ {evaluation:g})"
            evaluations = epsilon([gaussian(task.dp.evaluation_noise_multiplier)]
                                  * task.rounds, task.dp.delta)
            try:
                now = [federated(PLANNED(task), partners(data, s), s) for s in range(seeds)]
                before = [federated(BEFORE(task), partners(data, s), s).auc
                          for s in range(seeds)]
            except dp_sgd.PlanError as err:
                print(f"| {data.name} | {label} | - | {evaluations:.2f} | | | | {task.rounds} | "
                      f"| infeasible: {err} | {central:.3f} | - |", flush=True)
                continue
            auc = statistics.median(r.auc for r in now)
            print(f"| {data.name} | {label} | {max(r.epsilon for r in now):.2f} | "
                  f"{evaluations:.2f} | {describe(now[0].mechanism, n)} | {task.rounds} | "
                  f"{statistics.median(before):.3f} | {auc:.3f} | {central:.3f} | "
                  f"{auc / central:.3f} |", flush=True)
        print(f"| {data.name} | centralized: best median of {len(RECIPES)} SGD "
              f"recipes ({recipe}, batch 64) | | | | | | | | | | |", flush=True)
    print()


# Each row changes the row above it.
ABLATION: list[tuple[str, Change]] = [
    ("before: batch 64, 2 epochs a round, 5 rounds, lr 1, FedAvg", BEFORE),
    (f"batch and steps planned, within q ≤ {OLD_LIMITS.max_sample_rate:g} and "
     f"{OLD_LIMITS.max_local_epochs} epochs a round (the demo partners' limits before)",
     PLANNED),
    (f"… within q ≤ {LIMITS.max_sample_rate:g} and {LIMITS.max_local_epochs} epochs a round "
     "(their limits now)", lambda task: task),
    ("class weights [0.3, 1] (the demo task's now)", update(class_weights=[0.3, 1.0])),
]
# Other choices, each on top of the last row: (label, change, RUN_STEPS for it)
OTHERS: list[tuple[str, Change, int]] = [
    ("class weights [0.1, 1]", update(class_weights=[0.1, 1.0]), dp_sgd.RUN_STEPS),
    ("learning rate 2", update(learning_rate=2.0), dp_sgd.RUN_STEPS),
    ("learning rate 0.5", update(learning_rate=0.5), dp_sgd.RUN_STEPS),
    ("240 steps a run, learning rate 2", update(learning_rate=2.0), 240),
    ("960 steps a run, learning rate 0.5", update(learning_rate=0.5), 960),
    ("cosine schedule to 0.5, learning rate 1.3",
     update(learning_rate=1.3, learning_rate_schedule={"kind": "cosine", "final": 0.5}),
     dp_sgd.RUN_STEPS),
    ("server momentum 0.5, server lr 0.5",
     update(server_optimizer={"momentum": 0.5, "learning_rate": 0.5}), dp_sgd.RUN_STEPS),
    ("10 rounds", update(rounds=10), dp_sgd.RUN_STEPS),
    ("10 rounds, server momentum 0.5, server lr 0.5",
     update(rounds=10, server_optimizer={"momentum": 0.5, "learning_rate": 0.5}),
     dp_sgd.RUN_STEPS),
    ("10 rounds, server momentum 0.9, server lr 0.1",
     update(rounds=10, server_optimizer={"momentum": 0.9, "learning_rate": 0.1}),
     dp_sgd.RUN_STEPS),
    ("10 rounds, server FedAdam (lr 0.1, β1 0.5)",
     update(rounds=10, server_optimizer={"kind": "adam", "learning_rate": 0.1,
                                         "momentum": 0.5}), dp_sgd.RUN_STEPS),
]


def ablation(seeds: int, target: float) -> None:
    global LIMITS
    data = datasets()[0]  # Caravan
    central, _ = centralized(data, seeds)
    n = public_train_rows(partners(data, 0)[0])
    print(f"### What each choice adds: {data.name}, ε = {target:g}, median of {seeds} seeds\n")
    print("Each row of the first part changes the row above it; the second part's rows "
          "each change the first part's last row. \"gain\" is the median over seeds of "
          "the AUC difference with the row changed (same seeds: same partners, holdouts "
          "and noise draws), and \"seeds up\" in how many seeds it was positive.\n")
    print("| change | σ | batch | steps a round | rounds | federated DP AUC | gain | seeds up "
          "| DP / centralized |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")

    def line(label: str, spec: TaskSpec, base: list[float] | None) -> list[float]:
        runs = [federated(spec, partners(data, s), s) for s in range(seeds)]
        aucs = [r.auc for r in runs]
        auc = statistics.median(aucs)
        gain = up = "-"
        if base is not None:
            diffs = [a - b for a, b in zip(aucs, base, strict=True)]
            gain = f"{statistics.median(diffs):+.3f}"
            up = f"{sum(d > 0 for d in diffs)}/{seeds}"
        print(f"| {label} | {describe(runs[0].mechanism, n)} | {spec.rounds} | {auc:.3f} | "
              f"{gain} | {up} | {auc / central:.3f} |", flush=True)
        return aucs

    task = with_epsilon(data.task, target)
    aucs: list[float] | None = None
    limits = LIMITS
    for i, (label, change) in enumerate(ABLATION):
        LIMITS = OLD_LIMITS if i < 2 else limits
        task = change(task)
        aucs = line(label, task, aucs)
    assert aucs is not None
    default_steps = dp_sgd.RUN_STEPS
    for label, change, steps in OTHERS:
        dp_sgd.RUN_STEPS = steps
        try:
            line(f"+ {label}", change(task), aucs)
        finally:
            dp_sgd.RUN_STEPS = default_steps
    print(f"\ncentralized non-private AUC: {central:.3f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--quick", action="store_true",
                        help="3 seeds, ε 5 only, no ablation (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is faster, and leaves a core free
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
    start = time.monotonic()
    seeds = 3 if args.quick else args.seeds
    utility_table(seeds, ((5.0, None),) if args.quick else TARGETS)
    if not args.quick:
        ablation(seeds, 5.0)
    print(f"whole script: {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
