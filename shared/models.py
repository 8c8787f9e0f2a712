"""The model registry: the only architectures a task may name (no code from startups).

No BatchNorm or other layers that mix samples, so per-sample clipping in DP-SGD is sound.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from safetensors.torch import load, save
from torch import nn

from .preprocess import input_dim
from .task import ModelSpec, TaskSpec


def _logreg(spec: ModelSpec, d_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, n_out))


def _mlp(spec: ModelSpec, d_in: int, n_out: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = d_in
    for hidden in spec.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


REGISTRY: dict[str, Callable[[ModelSpec, int, int], nn.Module]] = {
    "logreg": _logreg,
    "mlp": _mlp,
}


def build_model(task: TaskSpec, seed: int | None = None) -> nn.Module:
    """A fresh model for the task; `seed` makes the initial weights reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return REGISTRY[task.model.kind](task.model, input_dim(task), len(task.target.classes))


def to_safetensors(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Model weights as safetensors bytes: no pickle, safe to load from any store."""
    return save({name: tensor.contiguous() for name, tensor in state_dict.items()})


def load_model(task: TaskSpec, weights: bytes) -> nn.Module:
    """The task's model with weights from `to_safetensors` bytes."""
    model = build_model(task)
    model.load_state_dict(load(weights))
    return model
