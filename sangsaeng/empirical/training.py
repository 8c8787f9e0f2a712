"""One audited training run: the partner's plan for the data, run round after round by the
partner's own train (client/dp_sgd.py), as the run would on this partner alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sangsaeng.client.dp_sgd import train
from sangsaeng.shared.accounting import Mechanism
from sangsaeng.shared.models import build_model
from sangsaeng.shared.task import TaskSpec

from .canaries import rng

Advance = Callable[[], None]  # one training step done (the progress bar's)


@dataclass(frozen=True)
class AuditedRun:
    """What both threat models train: the task, the partner's plan for one round (made from
    a public row count before the canaries are drawn, so it does not depend on them), the
    batch size the sums are divided by, and the audit's seed."""

    task: TaskSpec
    mechanism: Mechanism
    batch_size: float
    seed: int

    @property
    def steps(self) -> int:
        return self.mechanism.steps * self.task.rounds

    def initial_model(self) -> nn.Module:
        """The run's starting model: the task's seeded initialisation, which the auditor
        knows as well as the partner."""
        return build_model(self.task, seed=self.task.seed)

    def round_seed(self, stream: int, round_: int) -> int:
        """Sampling and noise of one round: a fresh stream each round (one seed for all
        would repeat the same noise)."""
        return int(rng(self.seed, stream, 2, round_).integers(2**63))

    def train(self, model: nn.Module, x: np.ndarray, y: np.ndarray, stream: int,
              advance: Advance, gradient_canaries: torch.Tensor | None = None,
              after_step: Callable[[int, int], None] | None = None) -> None:
        """Every round of the run on `model`, in place; after_step(round, step)."""
        for round_ in range(1, self.task.rounds + 1):
            def stepped(i: int, round_: int = round_) -> None:
                if after_step is not None:
                    after_step(round_, i)
                advance()

            train(model, x, y, self.task, self.mechanism, self.round_seed(stream, round_),
                  round_=round_, batch_size=self.batch_size,
                  gradient_canaries=gradient_canaries, after_step=stepped)
