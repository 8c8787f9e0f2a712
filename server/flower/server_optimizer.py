"""The coordinator's step from the partners' averaged model to the next global model.

The average of the partners' DP-trained models is all the coordinator sees; anything it
computes from the sequence of averages is post-processing of DP releases and costs no ε.
So the global model may move like a server-side optimizer on the "pseudo-gradient"
Δ = average − current global model (Reddi et al. 2021, "Adaptive Federated Optimization",
arXiv:2003.00295): momentum smooths the noise of successive rounds, Adam rescales each
coordinate. The task's `server_optimizer` says which (shared/task.py).
"""

from __future__ import annotations

import numpy as np

from sangsaeng.shared.task import ServerOptimizerSpec

Arrays = dict[str, np.ndarray]


class ServerOptimizer:
    """One instance per run: it keeps the moments across its rounds (in the ServerApp's
    memory, which lives as long as the run)."""

    def __init__(self, spec: ServerOptimizerSpec) -> None:
        self.spec = spec
        self.steps = 0
        self.first: Arrays = {}  # momentum, or Adam's first moment
        self.second: Arrays = {}  # Adam's second moment

    def step(self, current: Arrays, averaged: Arrays) -> Arrays:
        """The next global model from the `current` one (what the partners were sent) and
        the partners' weighted average of what they returned; each array keeps the
        average's dtype. A deterministic function of the averages seen so far."""
        if current.keys() != averaged.keys():
            raise ValueError("the averaged model's tensors are not the current model's")
        if self.spec.is_fedavg:
            return averaged
        self.steps += 1
        spec = self.spec
        new = {}
        for name, average in averaged.items():
            if average.shape != current[name].shape:
                raise ValueError(f"tensor '{name}' changed shape between rounds")
            base = current[name].astype(np.float64)
            delta = average.astype(np.float64) - base
            first = self.first.get(name, np.zeros_like(delta))
            if spec.kind == "sgd":
                self.first[name] = first = spec.momentum * first + delta
                move = spec.learning_rate * first
            else:
                second = self.second.get(name, np.zeros_like(delta))
                self.first[name] = first = spec.momentum * first + (1 - spec.momentum) * delta
                self.second[name] = second = (spec.beta2 * second
                                              + (1 - spec.beta2) * np.square(delta))
                first_hat = first / (1 - spec.momentum ** self.steps)
                second_hat = second / (1 - spec.beta2 ** self.steps)
                move = spec.learning_rate * first_hat / (np.sqrt(second_hat) + spec.epsilon)
            new[name] = (base + move).astype(average.dtype)
        return new
