"""The canaries: which are in (a seeded, recorded draw), and what each one is.

Each of m canaries is in the training data independently with probability ½ (Steinke,
Nasr, Jagielski 2023, arXiv:2305.08846, Algorithm 1): the draw is the secret the guesses
are scored against, so it comes from its own stream of the audit's seed, never from the
training's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sangsaeng.shared.task import CategoricalFeature, NumericFeature, TaskSpec

# A white-box canary's gradient is this many times the clipping bound: clipped to the bound
# by a correct step, and far above it where clipping is off.
GRADIENT_NORM = 10.0
# A black-box canary sets about this share of the numeric columns above their declared
# range (the rest below it): sparse patterns overlap little, so one canary's effect on the
# model is little confused with another's (Keinan, Shenfeld, Ligett 2025, arXiv:2503.07199,
# on interference as what limits one-run audits).
ACTIVE_SHARE = 0.1


def rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent stream of the audit's seed, by name (numpy's SeedSequence)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def draw_included(seed: int, stream: int, m: int) -> np.ndarray:
    """Which of m canaries are in: independent fair coins."""
    return rng(seed, stream, 0).random(m) < 0.5


def gradient_canaries(seed: int, m: int, parameters: int, max_grad_norm: float,
                      dtype: torch.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """m Dirac canaries (Steinke et al. 2023, §7; Nasr et al. 2023, arXiv:2302.07956): each
    a per-example gradient of norm GRADIENT_NORM·C on a coordinate of its own, chosen at
    random among the model's parameters. Distinct coordinates, so no canary's signal
    reaches another's score. Returns the coordinates and the m gradients (m × parameters)."""
    if m > parameters:
        raise ValueError(f"{m} white-box canaries need as many parameters; the model has "
                         f"{parameters}: ask for fewer canaries")
    coordinates = rng(seed, 1, 1).choice(parameters, m, replace=False)
    gradients = torch.zeros(m, parameters, dtype=dtype)
    gradients[torch.arange(m), torch.from_numpy(coordinates)] = GRADIENT_NORM * max_grad_norm
    return coordinates, gradients


def record_canaries(task: TaskSpec, seed: int, m: int) -> pd.DataFrame:
    """m crafted records as a table of the task's columns (each cell as text, as a partner's
    file is read), to go through the same pre-processing as the data: a random ACTIVE_SHARE
    of the numeric columns far above their declared range, the others far below it (valid
    records, clipped to the range's ends), a random declared category in each categorical
    column, and a random label. Random labels: no rule shared by all canaries, so the model
    can only fit one by remembering it."""
    draw = rng(seed, 2, 1)
    columns: dict[str, list[str]] = {}
    numeric = [f for f in task.features if isinstance(f, NumericFeature)]
    active = draw.random((m, len(numeric))) < ACTIVE_SHARE
    for j, feature in enumerate(numeric):
        span = feature.max - feature.min
        columns[feature.name] = [repr(feature.max + span) if on else repr(feature.min - span)
                                 for on in active[:, j]]
    for categorical in task.features:
        if isinstance(categorical, CategoricalFeature):
            picks = draw.integers(len(categorical.categories), size=m)
            columns[categorical.name] = [str(categorical.categories[i]) for i in picks]
    labels = draw.integers(len(task.target.classes), size=m)
    columns[task.target.name] = [str(task.target.classes[i]) for i in labels]
    return pd.DataFrame(columns, dtype=object)
