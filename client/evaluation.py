"""Holdout evaluation as a DP release: the Gaussian mechanism on clipped per-row sums.

Each holdout row contributes the vector (min(loss, B) / B, correct, 1), whose L2 norm is at
most √3; the partner releases the three sums plus Gaussian noise of standard deviation
z·√3 each, so adding or removing one row moves the release by at most one noise unit in
L2. That is the Gaussian mechanism with noise multiplier z — the sampled Gaussian mechanism
with q = 1 and one step, which the ledger accounts with the same accountant as DP-SGD
(dp_accounting's PLD of the Gaussian mechanism). Loss and accuracy are the noisy sums over
the noisy count: post-processing, free in ε. AUC would need the scores' distribution
and is not released.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import torch
from torch import nn

SENSITIVITY = math.sqrt(3.0)  # L2 norm of one row's (loss / B, correct, 1)
CHUNK = 256  # holdout rows through the model at once


def loss_bound(n_classes: int) -> float:
    """B: a row's loss counts at most twice the loss of guessing uniformly (ln k)."""
    return 2.0 * math.log(n_classes)


def holdout_sums(model: nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int
                 ) -> torch.Tensor:
    """Σ (min(loss, B) / B, correct, 1) over the rows: each row moves it by at most √3."""
    bound = loss_bound(n_classes)
    model.eval()
    with torch.no_grad():  # in chunks: memory bounded whatever the holdout's size
        logits = torch.cat([model(chunk) for chunk in torch.from_numpy(x).split(CHUNK)]
                           ) if len(x) else model(torch.from_numpy(x))
        labels = torch.from_numpy(y)
        loss = nn.functional.cross_entropy(logits, labels, reduction="none").double()
        # a non-finite loss (huge logits) counts as the bound, like any loss above it
        loss = torch.nan_to_num(loss, nan=bound, posinf=bound).clamp(0.0, bound) / bound
        correct = (logits.argmax(dim=1) == labels).double()
    return torch.stack([loss.sum(), correct.sum(),
                        torch.tensor(float(len(labels)), dtype=torch.float64)])


def release(sums: torch.Tensor, n_classes: int, noise_multiplier: float,
            seed: int | None = None) -> dict[str, float]:
    """The Gaussian mechanism on `sums`, then loss, accuracy and the example count from the
    noisy values. `seed` is for tests; by default the noise is seeded from the OS."""
    # numpy's generator takes all 128 bits of the OS seed (torch's keeps the low 32: one of
    # only 2³² noise streams); its standard_normal is an exact ziggurat (Marsaglia, Tsang 2000)
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    noisy = sums + torch.from_numpy(rng.standard_normal(3)) * (noise_multiplier * SENSITIVITY)
    bound = loss_bound(n_classes)
    count = max(float(noisy[2]), 1.0)
    return {"loss": min(max(bound * float(noisy[0]) / count, 0.0), bound),
            "accuracy": min(max(float(noisy[1]) / count, 0.0), 1.0),
            "count": count}
