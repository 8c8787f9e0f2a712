"""Local training throughput: plain SGD (no DP, the floor) vs Opacus in `hooks` and in
`ghost` mode vs Sangsaeng's ghost-norm step (client/ghost_step.py), for the registry's
models.

    .venv/bin/python bench/dp_step.py [--rows 51200] [--batch 256] [--reps 21]

Every variant runs the whole step (batch selection, forward, backward, clipping, noise,
update) on in-memory tensors, no DataLoader. The plain floor trains as a user would:
autograd and torch.optim.SGD over shuffled slices. The DP variants sample by Poisson
(client/ghost_step.PoissonSampler; Opacus gets the same kind of indices, not its own
O(n)-per-step sampler). A DP/plain ratio is therefore what a user pays for privacy with
that implementation; Sangsaeng's step also skips autograd, which the floor does not.
Variants run round-robin, plain first, each rep calibrated to about a third of a second;
printed are the medians over reps of samples/s and of the DP/plain step-time ratio within
a rep. Ratios, not absolute speeds, are what carries over between runs on a shared, noisy
machine.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from sangsaeng.client.ghost_step import GhostDPSGD, PoissonSampler

SIGMA, CLIP, LR = 1.0, 1.0, 0.05
Step = Callable[[], None]


def models() -> dict[str, Callable[[], nn.Module]]:
    """The registry's models (shared/models.py), as a task would name them."""
    from sangsaeng.demo.data import default_task_path
    from sangsaeng.shared.models import build_model, classifier_head
    from sangsaeng.shared.preprocess import input_dim
    from sangsaeng.shared.task import ModelSpec, load_task

    demo = load_task(default_task_path())
    return {
        "logreg 100→2": lambda: classifier_head(ModelSpec(kind="logreg"), 100, 2),
        "mlp 100→256→256→2": lambda: classifier_head(ModelSpec(kind="mlp", hidden=[256, 256]),
                                                     100, 2),
        f"demo mlp {input_dim(demo)}→16→2": lambda: build_model(demo, seed=0),
    }


def plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> Step:
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    order, at = torch.randperm(len(y)), 0

    def step() -> None:  # the next slice of a shuffled epoch
        nonlocal order, at
        if at + batch > len(y):
            order, at = torch.randperm(len(y)), 0
        idx = order[at:at + batch]
        at += batch
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
    return step


def opacus(mode: str) -> Callable[[nn.Module, torch.Tensor, torch.Tensor, int], Step]:
    """Opacus' DP-SGD in `mode`: "hooks" (per-sample gradients, materialised) or "ghost"
    (Opacus' fast gradient clipping: per-sample norms without them, two backward passes)."""
    def variant(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> Step:
        from opacus import PrivacyEngine

        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                             batch_size=batch)
        loss = nn.CrossEntropyLoss()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            private, optimizer, *rest = PrivacyEngine().make_private(
                module=model, optimizer=torch.optim.SGD(model.parameters(), lr=LR),
                data_loader=loader, noise_multiplier=SIGMA, max_grad_norm=CLIP,
                poisson_sampling=True, grad_sample_mode=mode,
                **({"criterion": loss} if mode == "ghost" else {}))
        if mode == "ghost":  # (model, optimizer, criterion, loader): its loss does the clipping
            loss = rest[0]
        sample = PoissonSampler(len(y), batch / len(y), seed=0)

        def step() -> None:
            idx = sample()
            optimizer.zero_grad(set_to_none=True)
            loss(private(x[idx]), y[idx]).backward()
            optimizer.step()
        return step
    return variant


def sangsaeng(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> Step:
    sample = PoissonSampler(len(y), batch / len(y), seed=0)
    dp = GhostDPSGD(model, lr=LR, max_grad_norm=CLIP, noise_multiplier=SIGMA,
                    expected_batch_size=batch)

    def step() -> None:
        idx = sample()
        dp.step(x[idx], y[idx])
    return step


PLAIN, SANGSAENG = "plain PyTorch (no DP)", "Sangsaeng ghost step"
DP_VARIANTS = {SANGSAENG: sangsaeng, "Opacus ghost": opacus("ghost"),
               "Opacus hooks": opacus("hooks")}
VARIANTS = {PLAIN: plain, **DP_VARIANTS}


def measure(steps: dict[str, Step], batch: int, reps: int
            ) -> tuple[dict[str, float], dict[str, float]]:
    """Median samples/s of each step, and median DP/plain step-time ratio, over `reps`
    reps of about a third of a second per variant. In a rep the plain step runs first and
    each DP variant's time is divided by that rep's plain time, so that drift in the
    machine's speed (it is shared: ±20% over seconds) cancels in the ratio."""
    counts = {}
    for name, step in steps.items():  # warm up, then size a rep to ~1/3 s
        for _ in range(10):
            step()
        start = time.perf_counter()
        for _ in range(20):
            step()
        counts[name] = max(3, int(20 / 3 / (time.perf_counter() - start)))
    seconds: dict[str, list[float]] = {name: [] for name in steps}  # per step
    for _ in range(reps):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(counts[name]):
                step()
            seconds[name].append((time.perf_counter() - start) / counts[name])
    speed = {name: batch / statistics.median(s) for name, s in seconds.items()}
    ratio = {name: statistics.median(t / p for t, p in zip(s, seconds[PLAIN], strict=True))
             for name, s in seconds.items() if name != PLAIN}
    return speed, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=51_200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(2)
    # Opacus' hooks fire with inputs that need no grad (they never do here): not news
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    # Weights that drift under DP noise make subnormal floats, which x86 computes ~100x
    # slower; flushing them to zero (as the client does) speeds every variant, DP or not.
    torch.set_flush_denormal(True)
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"Python {platform.python_version()}; {args.rows} rows, batch {args.batch}, "
          "subnormals flushed, "
          f"σ={SIGMA}, C={CLIP}; median of {args.reps} reps\n")
    print(f"| model | {' | '.join(f'{v} samples/s' for v in VARIANTS)} | "
          + " | ".join(f"{v}/plain" for v in DP_VARIANTS) + " |")
    print("|---|" + "--:|" * (len(VARIANTS) + len(DP_VARIANTS)))
    for label, make in models().items():
        torch.manual_seed(0)
        base = make()
        d_in = next(base.parameters()).shape[1]
        x = torch.randn(args.rows, d_in)
        y = (x[:, 0] + 0.5 * torch.randn(args.rows) > 0).long()
        steps = {name: variant(copy.deepcopy(base), x, y, args.batch)
                 for name, variant in VARIANTS.items()}
        speed, ratio = measure(steps, args.batch, args.reps)
        print(f"| {label} | " + " | ".join(f"{speed[v] / 1000:,.1f}k" for v in VARIANTS)
              + " | " + " | ".join(f"{ratio[v]:.2f}x" for v in DP_VARIANTS)
              + " |", flush=True)


if __name__ == "__main__":
    main()
