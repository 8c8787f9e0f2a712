"""Black-box audit: crafted input records, and the final model only.

The auditor of a startup's view: it may put records into the data (as anyone whose data a
partner holds could) and sees only the model the run releases. The canaries are records
(canaries.record_canaries) read through the task's own pre-processing (shared/preprocess.py)
and trained on with the data rows by the partner's train. A canary's score is how much the
run lowered its loss: its cross-entropy under the initial model (the task's seeded
initialisation, public) less under the final one (Steinke et al. 2023, §6, score by loss).
Far weaker than white-box: final-model audits of DP-SGD reach a fraction of the true ε
(Annamalai, De Cristofaro 2024, arXiv:2405.14106).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sangsaeng.shared.preprocess import encode
from sangsaeng.shared.task import TaskSpec

from .canaries import record_canaries
from .training import Advance, AuditedRun

STREAM = 2  # the black-box run's seeds


def canary_rows(task: TaskSpec, seed: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    x, y, labelled = encode(record_canaries(task, seed, m), task)
    assert labelled.all()  # every canary's label is a declared class
    return x, y


def _losses(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        return nn.functional.cross_entropy(logits, torch.from_numpy(y),
                                           reduction="none").double().numpy()


def scores(run: AuditedRun, x: np.ndarray, y: np.ndarray, included: np.ndarray,
           advance: Advance) -> np.ndarray:
    """One training run on the data and the included canaries; a score per canary."""
    cx, cy = canary_rows(run.task, run.seed, len(included))
    model = run.initial_model()
    before = _losses(model, cx, cy)
    run.train(model, np.concatenate([x, cx[included]]), np.concatenate([y, cy[included]]),
              STREAM, advance)
    return before - _losses(model, cx, cy)
