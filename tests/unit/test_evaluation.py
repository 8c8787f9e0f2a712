"""issue 15, finding 2: holdout evaluation answered exact metrics of any weights, free.
It is now a Gaussian release whose per-row sensitivity holds for any finite weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sangsaeng.client.evaluation import SENSITIVITY, holdout_sums, loss_bound, release
from sangsaeng.shared.models import build_model

from ..support.tasks import task_with

TASK = task_with(model={"kind": "mlp", "hidden": [8]})


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dim = build_model(TASK, seed=0)[0].in_features  # type: ignore[index]
    return rng.random((n, dim), dtype=np.float32), rng.integers(0, 2, n).astype(np.int64)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e30])
def test_one_row_moves_the_sums_by_at_most_the_sensitivity(scale: float) -> None:
    """Crafted weights (huge, so losses overflow) cannot make one row count for more."""
    model = build_model(TASK, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    x, y = _rows(200, 2)
    with_all = holdout_sums(model, x, y, 2)
    for i in range(0, 200, 17):  # remove row i
        without = holdout_sums(model, np.delete(x, i, 0), np.delete(y, i), 2)
        assert torch.isfinite(with_all).all()
        assert float(torch.linalg.norm(with_all - without)) <= SENSITIVITY + 1e-9


def test_the_release_is_noised_as_accounted() -> None:
    sums = torch.tensor([40.0, 300.0, 400.0], dtype=torch.float64)
    counts = [release(sums, 2, noise_multiplier=10.0, seed=s)["count"] for s in range(2000)]
    assert np.std(counts) == pytest.approx(10.0 * math.sqrt(3), rel=0.06)
    assert np.mean(counts) == pytest.approx(400.0, abs=1.5)
    one = release(sums, 2, noise_multiplier=10.0, seed=3)
    assert 0.0 <= one["accuracy"] <= 1.0 and 0.0 <= one["loss"] <= loss_bound(2)
    assert release(sums, 2, 1e-9, seed=0) == pytest.approx(
        {"loss": loss_bound(2) * 0.1, "accuracy": 0.75, "count": 400.0})
