"""Pretrained text models: what DP costs per step in each training mode, what a round
costs a partner, and what the model gains for its ε.

    .venv/bin/python bench/text.py [--seeds 3] [--reps 9]

1. Step: on the same trained parameters, plain PyTorch SGD (autograd, no DP: the floor)
   against Sangsaeng's step (the ghost step for `head`, the per-sample step for
   `adapters`) and Opacus 1.6 in `hooks` and `ghost` mode; medians over reps of the
   step-time ratio to the plain step measured just before it (ratios carry over between
   runs on a shared machine, absolute speeds do not).
2. A partner's round: encoding its reviews the first time (the encoder over every row),
   reading them back from its cache, and a round's DP training, for each mode.
3. Utility: federated DP fine-tuning of the startup's base model (a head trained on 200
   public reviews) across 3 partners holding the 4,000 private reviews, at ε = 3 and 8
   per partner for the whole run (evaluations included), against the base model and
   against non-private centralized fine-tuning of the same trained parameters from the
   same start; accuracy and AUC on the partners' pooled holdout rows, median over seeds.
   Rounds run in-process with the partners' own code (client/dp_sgd.py, FedAvg by the
   public sizes); what the transport adds is in bench/round.py.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import dp_step
import numpy as np
import torch
from torch import nn

from sangsaeng.client import dp_sgd
from sangsaeng.client.data import LocalData, cached_text_inputs, holdout_rows
from sangsaeng.client.ghost_step import GhostDPSGD, PoissonSampler
from sangsaeng.client.per_sample_step import PerSampleDPSGD
from sangsaeng.demo.baseline import pooled_holdout_scores
from sangsaeng.demo.reviews import partners_table, public_table, train_base_model
from sangsaeng.shared.models import build_model
from sangsaeng.shared.preprocess import encode
from sangsaeng.shared.task import TaskSpec, load_task

ROOT = Path(__file__).resolve().parent.parent
PARTNERS = 3
HOLDOUT = 0.2
KEY = "5a" * 16  # a fixed holdout key: every variant holds out the same rows
Step = dp_step.Step


def task(mode: str, **changes: object) -> TaskSpec:
    """The text demo's task in `mode` (adapters: the last layer, rank 8, 64 tokens)."""
    base = load_task(ROOT / "sangsaeng" / "demo" / "reviews.toml")
    model = {"mode": mode, **({"max_tokens": 64, "adapter_layers": 1, "adapter_rank": 8}
                              if mode == "adapters" else {})}
    return base.model_copy(update={"model": base.model.model_copy(update=model), **changes})


# --- 1. the step ----------------------------------------------------------------------------

def sangsaeng(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> Step:
    """The partner's step: the ghost step for a head, the per-sample step for adapters."""
    kind = GhostDPSGD if isinstance(model, nn.Sequential) else PerSampleDPSGD
    dp = kind(model, lr=dp_step.LR, max_grad_norm=dp_step.CLIP,
              noise_multiplier=dp_step.SIGMA, expected_batch_size=batch)
    sample = PoissonSampler(len(y), batch / len(y), seed=0)

    def step() -> None:
        idx = sample()
        dp.step(x[idx], y[idx])
    return step


# bench/dp_step.py's floor and Opacus variants: a text model's parameters are all trained
# (its frozen encoder layers are buffers)
VARIANTS = {dp_step.PLAIN: dp_step.plain, "Sangsaeng": sangsaeng,
            "Opacus ghost": dp_step.opacus("ghost"), "Opacus hooks": dp_step.opacus("hooks")}


def step_table(inputs: dict[str, tuple[np.ndarray, np.ndarray]], reps: int) -> None:
    print("### DP step over the non-private step, on the same trained parameters\n")
    names = list(VARIANTS)
    print("| mode | batch | trained parameters | " + " | ".join(f"{n} ms/step" for n in names)
          + " | " + " | ".join(f"{n}/plain" for n in names[1:]) + " |")
    print("|---|--:|--:|" + "--:|" * (2 * len(names) - 1))
    for mode, batch in (("head", 256), ("adapters", 64)):
        x, y = (torch.from_numpy(a) for a in inputs[mode])
        base = build_model(task(mode), seed=0)
        for p in base.parameters():  # away from B = 0: every gradient is non-trivial
            p.data.normal_(0, 0.05)
        size = sum(p.numel() for p in base.parameters())
        steps: dict[str, Step] = {}
        failed: dict[str, str] = {}
        for name, variant in VARIANTS.items():
            try:
                steps[name] = variant(copy.deepcopy(base), x, y, batch)
                steps[name]()
            except Exception as err:  # Opacus may not take a model: say so, go on
                failed[name] = type(err).__name__
                steps.pop(name, None)
        speed, ratio = dp_step.measure(steps, batch, reps)
        cells = [f"{batch / speed[n] * 1000:.1f}" if n in speed else f"fails ({failed[n]})"
                 for n in names]
        ratios = [f"{ratio[n]:.2f}x" if n in ratio else "-" for n in names[1:]]
        print(f"| {mode} | {batch} | {size:,} | " + " | ".join(cells) + " | "
              + " | ".join(ratios) + " |", flush=True)
    print()


# --- 2. a partner's round -------------------------------------------------------------------

def partner_round(table: object, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Time one partner's encoding (cold, then cached) and a round of DP training in each
    mode; returns each mode's training inputs for the step benchmark."""
    import pandas as pd

    assert isinstance(table, pd.DataFrame)
    demo = task("head")
    print(f"### A partner's round ({len(table):,} reviews, the demo task's round: "
          f"{demo.local_epochs} local epochs, batch {demo.batch_size}, σ = 1)\n")
    print("| mode | encode, first round (s) | encode, from the cache (s) | DP training (s) "
          "| steps |")
    print("|---|--:|--:|--:|--:|")
    inputs = {}
    for mode in ("head", "adapters"):
        spec = task(mode)
        start = time.perf_counter()
        encode(table, spec, cached_text_inputs(cache))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        x, y, labelled = encode(table, spec, cached_text_inputs(cache))
        warm = time.perf_counter() - start
        x, y = x[labelled], y[labelled]
        planned = dp_sgd.plan(spec, len(y)).model_copy(update={"noise_multiplier": 1.0})
        model = build_model(spec, seed=0)
        start = time.perf_counter()
        dp_sgd.train(model, x, y, spec, planned)
        print(f"| {mode} | {cold:.1f} | {warm:.3f} | {time.perf_counter() - start:.2f} | "
              f"{planned.steps} |", flush=True)
        inputs[mode] = (x, y)
    print()
    return inputs


# --- 3. utility -----------------------------------------------------------------------------

def partners(spec: TaskSpec, cache: Path) -> list[LocalData]:
    table = partners_table()
    parts = []
    for rows in np.array_split(np.random.default_rng(0).permutation(len(table)), PARTNERS):
        part = table.iloc[np.sort(rows)].reset_index(drop=True)
        x, y, labelled = encode(part, spec, cached_text_inputs(cache))
        held = holdout_rows(part, KEY, HOLDOUT)
        train, hold = labelled & ~held, labelled & held
        parts.append(LocalData(x[train], y[train], x[hold], y[hold]))
    return parts


def scores(parts: list[LocalData], model: nn.Module) -> tuple[float, float]:
    accuracy, auc = pooled_holdout_scores(parts, model)
    assert auc is not None  # every partner's holdout holds both classes
    return accuracy, auc


def federated(spec: TaskSpec, parts: list[LocalData], start: dict[str, torch.Tensor],
              seed: int) -> nn.Module:
    """The run as the partners and the ServerApp compute it: each round, every partner
    trains the global model with its planned mechanism; FedAvg weights by public size."""
    sizes = [round(len(p.y_train) / 100) * 100 for p in parts]  # published, rounded
    plans = {size: dp_sgd.plan(spec, size) for size in set(sizes)}  # as each partner's
    global_state = start
    for round_ in range(spec.rounds):
        states = []
        for i, (part, size) in enumerate(zip(parts, sizes, strict=True)):
            model = build_model(spec)
            model.load_state_dict(global_state)
            dp_sgd.train(model, part.x_train, part.y_train, spec, plans[size],
                         seed=seed * 1000 + round_ * 10 + i)
            states.append(model.state_dict())
        total = sum(sizes)
        global_state = {k: sum(s[k] * (n / total) for s, n in zip(states, sizes, strict=True))
                        for k in global_state}
    model = build_model(spec)
    model.load_state_dict(global_state)
    return model


def centralized(spec: TaskSpec, parts: list[LocalData], start: dict[str, torch.Tensor],
                seed: int) -> nn.Module:
    """Non-private: the pooled training rows, plain SGD, as many epochs as the run."""
    x = torch.from_numpy(np.concatenate([p.x_train for p in parts]))
    y = torch.from_numpy(np.concatenate([p.y_train for p in parts]))
    model = build_model(spec)
    model.load_state_dict(start)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=spec.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    assert spec.local_epochs and spec.batch_size  # the text demo's task fixes both
    for _ in range(spec.rounds * spec.local_epochs):
        for batch in torch.randperm(len(y), generator=generator).split(spec.batch_size):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model


def utility(cache: Path, seeds: int) -> None:
    print(f"### Utility: pooled holdout of the 3 partners, median of {seeds} seeds\n")
    print("| mode | ε per partner (run) | σ | base model acc / AUC | federated DP acc / AUC "
          "| centralized non-private acc / AUC | DP AUC gain over base |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for mode in ("head", "adapters"):
        plain_spec = task(mode)
        parts = partners(plain_spec, cache)
        head = train_base_model(task("head"), public_table().head(200))
        start = build_model(plain_spec, seed=plain_spec.seed).state_dict()
        start.update(head if mode == "head" else {f"head.{k}": v for k, v in head.items()})
        base = build_model(plain_spec)
        base.load_state_dict(start)
        base_scores = scores(parts, base)
        central = [scores(parts, centralized(plain_spec, parts, start, s))
                   for s in range(seeds)]
        for target in (3.0, 8.0):
            spec = plain_spec.model_copy(update={"dp": plain_spec.dp.model_copy(
                update={"target_epsilon": target})})
            sigma = dp_sgd.plan(spec, round(len(parts[0].y_train) / 100) * 100)
            runs = [scores(parts, federated(spec, parts, start, s))
                    for s in range(seeds)]
            dp_acc = statistics.median(r[0] for r in runs)
            dp_auc = statistics.median(r[1] for r in runs)
            print(f"| {mode} | {target:g} | {sigma.noise_multiplier:.2f} | "
                  f"{base_scores[0]:.3f} / {base_scores[1]:.3f} | {dp_acc:.3f} / {dp_auc:.3f} | "
                  f"{statistics.median(c[0] for c in central):.3f} / "
                  f"{statistics.median(c[1] for c in central):.3f} | "
                  f"{dp_auc - base_scores[1]:+.3f} |", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    with tempfile.TemporaryDirectory(prefix="sangsaeng-bench-text-") as tmp:
        cache = Path(tmp)
        table = partners_table()
        one = table.iloc[: len(table) // PARTNERS].reset_index(drop=True)
        inputs = partner_round(one, cache / "one")
        step_table(inputs, args.reps)
        utility(cache / "all", args.seeds)


if __name__ == "__main__":
    main()
