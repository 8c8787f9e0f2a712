"""The model registry: the only architectures a task may name (no code from startups).

No BatchNorm or other layers that mix samples, so per-sample clipping in DP-SGD is sound.
A model here is the part of the architecture that trains, and its state_dict is exactly
the trained parameters: what travels between partners and the coordinator, what a
startup uploads as its base model and downloads at the end. A text-classifier's frozen
encoder is not in it: everyone loads that from the pinned package (shared/encoders.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import torch
from safetensors.torch import load, save
from torch import nn

from . import encoders
from .preprocess import input_dim
from .task import ModelSpec, TaskSpec

MAX_WEIGHTS_BYTES = 64 * 2**20  # an uploaded base model, or a run's downloaded one
MAX_TENSORS = 1_000  # the registry's largest model has a few dozen
MAX_HEADER_BYTES = 1 << 20
# No trained model of the registry comes near this; weights beyond it could amplify a
# float rounding difference between batches into a different clipped gradient.
MAX_ABS_WEIGHT = 1e4


class WeightsMismatch(ValueError):
    """Weights that do not fit the task's architecture; the message names the tensor."""


def classifier_head(spec: ModelSpec, d_in: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = d_in
    for hidden in spec.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class LowRank(nn.Module):
    """FFA-LoRA's update x ↦ x Aᵀ Bᵀ: A [rank, dim] fixed (a buffer made from the task's
    seed, the same everywhere, never sent), B [dim, rank] trained from zero (Sun et al.
    2024, arXiv:2403.12313: with A frozen, averaging B across partners is exact)."""

    def __init__(self, dim: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.a: torch.Tensor
        self.register_buffer("a", torch.randn(rank, dim, generator=generator) / math.sqrt(dim),
                             persistent=False)
        self.b = nn.Parameter(torch.zeros(dim, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.a.T) @ self.b.T


class TextAdapters(nn.Module):
    """A text-classifier's trained part in adapters mode. Its input row is the states
    entering the encoder's last layers and their mask, flattened (shared/preprocess.py,
    text_inputs), then the table's other columns; it runs those layers with low-rank
    updates on attention query and value, pools and normalises as the encoder's sentence
    embedding does, and applies the head. The frozen layer weights are buffers outside
    the state_dict."""

    def __init__(self, task: TaskSpec, head: nn.Sequential) -> None:
        super().__init__()
        spec = task.model
        assert spec.encoder is not None  # TaskSpec guarantees it for a text model
        files = encoders.ENCODERS[spec.encoder]
        self.tokens, self.dim, self.heads = spec.max_tokens, files.dim, files.heads
        first = files.layers - spec.adapter_layers
        generator = torch.Generator().manual_seed(task.seed)
        self.frozen: list[dict[str, str]] = []
        self.query, self.value = nn.ModuleList(), nn.ModuleList()
        for i in range(spec.adapter_layers):
            names = {}
            for key, tensor in encoders.layer_weights(spec.encoder, first + i).items():
                names[key] = f"layer{i}_{key.replace('.', '_')}"
                self.register_buffer(names[key], tensor, persistent=False)
            self.frozen.append(names)
            self.query.append(LowRank(self.dim, spec.adapter_rank, generator))
            self.value.append(LowRank(self.dim, spec.adapter_rank, generator))
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = self.tokens * self.dim
        states = x[..., :width].reshape(*x.shape[:-1], self.tokens, self.dim)
        mask = x[..., width:width + self.tokens]
        for names, query, value in zip(self.frozen, self.query, self.value, strict=True):
            def weight(key: str, names: dict[str, str] = names) -> torch.Tensor:
                return getattr(self, names[key])  # type: ignore[no-any-return]

            states = encoders.layer_forward(weight, states, mask, self.heads, query=query,
                                            value=value)
        pooled = encoders.pool(states, mask)
        return self.head(torch.cat([pooled, x[..., width + self.tokens:]], dim=-1))


def _text_classifier(task: TaskSpec) -> nn.Module:
    head = classifier_head(task.model, input_dim(task), len(task.target.classes))
    return TextAdapters(task, head) if task.model.mode == "adapters" else head


REGISTRY: dict[str, Callable[[TaskSpec], nn.Module]] = {
    "logreg": lambda task: classifier_head(task.model, input_dim(task), len(task.target.classes)),
    "mlp": lambda task: classifier_head(task.model, input_dim(task), len(task.target.classes)),
    "text-classifier": _text_classifier,
}


def build_model(task: TaskSpec, seed: int | None = None) -> nn.Module:
    """A fresh model for the task; `seed` makes the initial weights reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return REGISTRY[task.model.kind](task)


def to_safetensors(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Model weights as safetensors bytes: no pickle, safe to load from any store. The
    bytes depend only on the tensors (safetensors orders them itself), so their sha256
    names a model."""
    return save({name: tensor.contiguous() for name, tensor in state_dict.items()})


def read_weights(weights: bytes) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes; WeightsMismatch if they are not safetensors of at
    most MAX_TENSORS non-empty float32 tensors. The header is checked before anything is
    allocated."""
    if len(weights) > MAX_WEIGHTS_BYTES:
        raise WeightsMismatch(f"weights are {len(weights)} bytes, over the limit of "
                              f"{MAX_WEIGHTS_BYTES}")
    header = _header(weights)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if len(tensors) > MAX_TENSORS:
        raise WeightsMismatch(f"weights hold {len(tensors)} tensors, over the limit of "
                              f"{MAX_TENSORS}")
    for name, info in tensors.items():
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            raise WeightsMismatch(f"tensor '{name[:100]}' is not float32")
        shape = info.get("shape")
        if not (isinstance(shape, list) and shape
                and all(isinstance(d, int) and d > 0 for d in shape)):
            raise WeightsMismatch(f"tensor '{name[:100]}' is empty or has no shape")
    try:
        return load(weights)
    except Exception:  # any malformation the header check let through
        raise WeightsMismatch("weights are not a safetensors file") from None


def _header(weights: bytes) -> dict[str, object]:
    """The safetensors header: an 8-byte little-endian length, then that much JSON."""
    size = int.from_bytes(weights[:8], "little") if len(weights) >= 8 else -1
    if not 2 <= size <= min(MAX_HEADER_BYTES, len(weights) - 8):
        raise WeightsMismatch("weights are not a safetensors file")
    try:
        header = json.loads(weights[8:8 + size])
    except ValueError:
        raise WeightsMismatch("weights are not a safetensors file") from None
    if not isinstance(header, dict):
        raise WeightsMismatch("weights are not a safetensors file")
    return header


def check_fits(task: TaskSpec, state: dict[str, torch.Tensor]) -> None:
    """WeightsMismatch naming the first tensor that the task's model lacks, misses, or
    has with another shape or dtype, or whose values are not finite or beyond
    MAX_ABS_WEIGHT."""
    expected = build_model(task).state_dict()
    if extra := sorted(state.keys() - expected.keys()):
        raise WeightsMismatch(f"tensor '{extra[0]}' is not a parameter of the task's model")
    if missing := sorted(expected.keys() - state.keys()):
        raise WeightsMismatch(f"tensor '{missing[0]}' of the task's model is missing")
    for name, tensor in expected.items():
        given = state[name]
        if given.shape != tensor.shape or given.dtype != tensor.dtype:
            raise WeightsMismatch(
                f"tensor '{name}' is {given.dtype} {list(given.shape)}; the task's model "
                f"needs {tensor.dtype} {list(tensor.shape)}")
        if not bool(torch.isfinite(given).all()):
            raise WeightsMismatch(f"tensor '{name}' has non-finite values")
        if bool((given.abs() > MAX_ABS_WEIGHT).any()):
            raise WeightsMismatch(f"tensor '{name}' has values beyond ±{MAX_ABS_WEIGHT:g}")


def load_model(task: TaskSpec, weights: bytes) -> nn.Module:
    """The task's model with weights from safetensors bytes, checked to fit it."""
    state = read_weights(weights)
    check_fits(task, state)
    model = build_model(task)
    model.load_state_dict(state)
    return model
