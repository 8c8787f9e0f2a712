"""The coordinator's server optimizer: a deterministic function of the averages it is
given (post-processing, free in ε), matching a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from sangsaeng.server.flower.server_optimizer import ServerOptimizer
from sangsaeng.shared.task import ServerOptimizerSpec


def arrays(w: list[float], b: float) -> dict[str, np.ndarray]:
    return {"w": np.array(w, dtype=np.float32), "b": np.array([b], dtype=np.float32)}


def test_the_default_is_fedavg_the_average_itself() -> None:
    optimizer = ServerOptimizer(ServerOptimizerSpec())
    averaged = arrays([0.1, 0.2], 0.3)
    assert optimizer.step(arrays([5.0, 5.0], 5.0), averaged) is averaged


def test_momentum_matches_a_hand_computation() -> None:
    """m = β m + Δ, next = current + η m, with Δ = average − current."""
    optimizer = ServerOptimizer(ServerOptimizerSpec(learning_rate=0.5, momentum=0.5))
    first = optimizer.step(arrays([0.0, 1.0], 0.0), arrays([2.0, 0.0], 4.0))
    # Δ = (2, -1 | 4); m = Δ; next = current + 0.5 m
    np.testing.assert_allclose(first["w"], [1.0, 0.5])
    np.testing.assert_allclose(first["b"], [2.0])
    second = optimizer.step(first, arrays([3.0, 0.5], 2.0))
    # Δ = (2, 0 | 0); m = 0.5 (2, -1 | 4) + Δ = (3, -0.5 | 2); next = first + 0.5 m
    np.testing.assert_allclose(second["w"], [2.5, 0.25])
    np.testing.assert_allclose(second["b"], [3.0])
    assert second["w"].dtype == np.float32  # the models partners receive stay float32


def test_adam_matches_a_hand_computation() -> None:
    spec = ServerOptimizerSpec(kind="adam", learning_rate=0.1, momentum=0.9, beta2=0.99,
                               epsilon=1e-3)
    optimizer = ServerOptimizer(spec)
    current, averaged = arrays([0.0, 0.0], 0.0), arrays([0.2, -0.4], 0.0)
    out = optimizer.step(current, averaged)
    # t = 1: bias-corrected moments are Δ and Δ²: a move of η Δ / (|Δ| + τ)
    delta = np.array([0.2, -0.4])
    np.testing.assert_allclose(out["w"], 0.1 * delta / (np.abs(delta) + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(out["b"], [0.0])  # Δ = 0 moves nothing
    again = optimizer.step(out, arrays([0.0, 0.0], 0.0))
    delta2 = -out["w"].astype(np.float64)
    m = 0.9 * 0.1 * delta + 0.1 * delta2
    v = 0.99 * 0.01 * delta ** 2 + 0.01 * delta2 ** 2
    m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.99 ** 2)
    np.testing.assert_allclose(again["w"], out["w"] + 0.1 * m_hat / (np.sqrt(v_hat) + 1e-3),
                               rtol=1e-5)


@pytest.mark.parametrize("spec", [ServerOptimizerSpec(learning_rate=0.7, momentum=0.9),
                                  ServerOptimizerSpec(kind="adam", learning_rate=0.01,
                                                      momentum=0.9)])
def test_the_next_model_is_a_function_of_the_averages_alone(spec: ServerOptimizerSpec
                                                            ) -> None:
    """Post-processing: the same sequence of averages gives the same models, bit for bit,
    in any instance; nothing random, nothing else enters."""
    rng = np.random.default_rng(0)
    sequence = [arrays(list(rng.normal(size=2)), float(rng.normal())) for _ in range(5)]
    runs = []
    for _ in range(2):
        optimizer, current, seen = ServerOptimizer(spec), arrays([0.0, 0.0], 0.0), []
        for averaged in sequence:
            current = optimizer.step(current, averaged)
            seen.append(current)
        runs.append(seen)
    for a, b in zip(*runs, strict=True):
        for key in a:
            assert np.array_equal(a[key], b[key])


def test_an_average_of_another_model_is_refused() -> None:
    optimizer = ServerOptimizer(ServerOptimizerSpec(momentum=0.5))
    with pytest.raises(ValueError, match="not the current model's"):
        optimizer.step(arrays([0.0, 0.0], 0.0), {"w": np.zeros(2, dtype=np.float32)})
    with pytest.raises(ValueError, match="'w' changed shape"):
        optimizer.step(arrays([0.0, 0.0], 0.0), {"w": np.zeros(3, dtype=np.float32),
                                                  "b": np.zeros(1, dtype=np.float32)})
