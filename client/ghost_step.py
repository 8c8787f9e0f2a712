"""DP-SGD for the registry's models (Linear and ReLU layers) without per-sample gradients.

The mechanism is exactly Opacus' (opacus/optimizers/optimizer.py, DPOptimizer): rows are
Poisson-sampled, each sample's gradient is clipped to norm C with the factor
min(1, C / (norm + 1e-6)), the clipped gradients are summed, Gaussian noise N(0, (σC)²) is
added to every coordinate, and the sum is divided by the expected batch size. What differs
is how the per-sample norms are found: for a Linear layer, sample i's weight gradient is the
outer product g_i a_iᵀ of its output gradient and its input, whose squared norm is
‖g_i‖²‖a_i‖² (plus ‖g_i‖² for the bias) — the "ghost norm" of Goodfellow 2015,
"Efficient Per-Example Gradient Computations", arXiv:1510.01799. The clipped sum is then one
matmul per layer, (c ⊙ g)ᵀ a. Nothing of size batch × parameters is ever built.

Optional per-class weights w ∈ (0, 1] (a task's `class_weights`) scale each clipped gradient:
sample i contributes w_{y_i} · min(1, C / ‖g_i‖) g_i, of norm at most w_{y_i} C ≤ C, so the
sensitivity — and with it the accounting — is that of clipping to C.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import torch
from torch import nn


class UnsupportedModel(ValueError):
    """A module other than Linear / ReLU: the fast step does not know its gradient."""


def linear_layers(model: nn.Module) -> list[tuple[nn.Linear, bool]]:
    """(layer, followed by ReLU) for a Sequential of Linear and ReLU modules."""
    modules = list(model.children()) if isinstance(model, nn.Sequential) else [model]
    layers: list[tuple[nn.Linear, bool]] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            layers.append((module, False))
        elif isinstance(module, nn.ReLU) and layers and not layers[-1][1]:
            layers[-1] = (layers[-1][0], True)
        else:
            raise UnsupportedModel(f"no fast DP-SGD step for {type(module).__name__}")
    if not layers or layers[-1][1]:
        raise UnsupportedModel("the model must end with a Linear layer (the logits)")
    if any(layer.bias is None for layer, _ in layers):
        raise UnsupportedModel("every Linear layer needs its bias")
    if any(not p.requires_grad for p in model.parameters()):
        raise UnsupportedModel("the step trains every parameter: none may be frozen")
    return layers


def clip_factor(norms: torch.Tensor, max_grad_norm: float) -> torch.Tensor:
    """Opacus' per-sample clipping factor min(1, C / (norm + 1e-6)), in place on `norms`:
    the one place the step clips (a privacy audit's fault injection replaces it)."""
    return (max_grad_norm / norms.add_(1e-6)).clamp_(max=1.0)


def _clipped_layer_grads(layers: list[tuple[nn.Linear, bool]], x: torch.Tensor,
                         y: torch.Tensor, max_grad_norm: float,
                         class_weights: torch.Tensor | None = None
                         ) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                                    torch.Tensor]:
    """Per layer (u, v, g), and the clipping factors c: sample i's clipped gradient of its
    cross-entropy loss is c_i g_i a_iᵀ for the weight and c_i g_i for the bias, so the
    batch's sums are uᵀ v = gᵀ (c ⊙ a) = (c ⊙ g)ᵀ a and gᵀ c. With `class_weights` (each
    in (0, 1]), c_i also carries its class's weight."""
    inputs = []
    h = x
    for layer, relu in layers:
        inputs.append(h)
        h = torch.addmm(layer.bias, h, layer.weight.T)
        if relu:
            h.clamp_min_(0)
    # d(sum of per-sample CE)/d(logits) = softmax - one-hot
    g = torch.softmax(h, dim=1)
    g.scatter_add_(1, y.view(-1, 1), g.new_full((1, 1), -1.0).expand(len(y), 1))
    grads_out = [g] * len(layers)
    sq_norms = None
    for i in reversed(range(len(layers))):
        grads_out[i] = g
        a_sq = torch.linalg.vector_norm(inputs[i], dim=1).square_().add_(1)
        g_sq = torch.linalg.vector_norm(g, dim=1).square_()
        sq_norms = g_sq.mul_(a_sq) if sq_norms is None else sq_norms.addcmul_(g_sq, a_sq)
        if i > 0:  # through layer i, then the ReLU (if any) whose output is its input
            g = g @ layers[i][0].weight
            if layers[i - 1][1]:
                g = torch.ops.aten.threshold_backward(g, inputs[i], 0)
    assert sq_norms is not None  # linear_layers returns at least one layer
    # One scalar check on the hot path: the sum of the (non-negative) squared norms is
    # finite unless some row's is not (or they overflow together: then the mask finds none).
    if not math.isfinite(sq_norms.sum().item()):
        # Weights crafted to overflow on one row would make the whole sum NaN exactly when
        # that row is sampled. Its gradient counts as zero instead (within any clipping
        # bound, so the sensitivity stays C); zeroing its rows avoids 0 * inf.
        finite = torch.isfinite(sq_norms)
        inputs = [a.where(finite[:, None], 0.0) for a in inputs]
        grads_out = [g.where(finite[:, None], 0.0) for g in grads_out]
        sq_norms = sq_norms.where(finite, 0.0)
    factor = clip_factor(sq_norms.sqrt_(), max_grad_norm)
    if class_weights is not None:  # after clipping: each row's norm stays <= its w C <= C
        factor.mul_(class_weights[y])
    column = factor[:, None]
    # scale whichever of g and a is smaller (the first layer's input, the logits' grad)
    return [(g, a * column, g) if a.shape[1] < g.shape[1] else (g * column, a, g)
            for a, g in zip(inputs, grads_out, strict=True)], factor


@torch.no_grad()
def clipped_sum(layers: list[tuple[nn.Linear, bool]], x: torch.Tensor, y: torch.Tensor,
                max_grad_norm: float, class_weights: torch.Tensor | None = None
                ) -> list[torch.Tensor]:
    """The sum over the batch of each sample's gradient of its cross-entropy loss, clipped
    to `max_grad_norm` (and scaled by its class's weight): one tensor per parameter, in
    `model.parameters()` order."""
    grads, factor = _clipped_layer_grads(layers, x, y, max_grad_norm, class_weights)
    sums: list[torch.Tensor] = []
    for u, v, g in grads:
        sums += [u.T @ v, g.T @ factor]
    return sums


def checked_class_weights(class_weights: torch.Tensor | None) -> torch.Tensor | None:
    """Class weights as given, if each is in (0, 1]: a weight above 1 would let a sample
    move the update by more than the clipping bound."""
    if class_weights is not None and not bool(
            ((class_weights > 0) & (class_weights <= 1)).all()):
        raise ValueError("class weights must each lie in (0, 1]")
    return class_weights


class PoissonSampler:
    """Each row independently with probability `rate`: the size is Binomial(n, rate) and
    the rows a uniform subset of that size, which is the same distribution as Opacus'
    UniformWithReplacementSampler's torch.rand(n) < rate, without its n random draws per
    step. numpy picks the subset in O(batch) (Floyd's algorithm) when n > 10,000 and
    rate <= 1/50; otherwise it partially shuffles an arange(n).
    Seeded from the OS (numpy's SeedSequence) unless a seed is given."""

    def __init__(self, n: int, rate: float, seed: int | None = None) -> None:
        self.n, self.rate = n, rate
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> torch.Tensor:
        k = self.rng.binomial(self.n, self.rate)
        return torch.from_numpy(self.rng.choice(self.n, k, replace=False))


class GaussianNoise:
    """Standard normal values for every parameter of a step, into one reused buffer.

    Drawing them is most of what DP adds to a step. torch's CPU normal_ is Box-Muller on
    uniforms that its Mersenne Twister makes one at a time (~2.3 ns a value here, most of
    it the uniforms); this is Box-Muller on bits from numpy's SFC64, about twice as fast
    to make, through numpy's vectorised log, sqrt, cos and sin (~1.4 ns a value).

    Exact: Box and Muller (1958), "A Note on the Generation of Random Normal Deviates",
    Ann. Math. Statist. 29(2):610-611 — for independent U1, U2 uniform on (0, 1),
    √(-2 ln U1)·cos(2πU2) and √(-2 ln U1)·sin(2πU2) are two independent N(0, 1) (here up to
    float rounding, as any float sampler). Each pair of values (values i and i + n/2 of the
    n made in one call) has its own two uniforms, each from its own random word (32 bits in
    float32, 64 in float64): with j the word's top m bits (the float type's mantissa bits,
    23 or 52), U = (2j + 1)·2⁻ᵐ⁻¹, the midpoint of one of 2ᵐ equal cells of (0, 1), made
    exactly as (1 + j·2⁻ᵐ) − (1 − 2⁻ᵐ⁻¹) from the bits of 1 + j·2⁻ᵐ. U is never 0 (the log
    is finite) nor 1. This is the resolution of torch's normal_
    (aten/src/ATen/native/cpu/DistributionTemplates.h, normal_fill: the same transform on
    24-bit uniforms), and the same largest float32 value, √(48 ln 2) ≈ 5.8.

    Seeded from the OS (128 bits from `secrets`) unless a seed is given, through numpy's
    SeedSequence, which hashes it into SFC64's 256-bit state; the stream is that seed's
    child NOISE_STREAM, not the stream the Poisson sampler makes of the same seed (tests
    give both one). Each draw goes on along the stream: new values every step. (The torch
    generator used before kept only the low 32 bits of any seed.) Neither is a
    cryptographically secure generator."""

    NOISE_STREAM = 1
    # values made per call, at least: a small model's noise is made for several steps at
    # once (each step takes the next `size` of them), as the fixed cost of a call (~6 µs)
    # would be more than torch's whole draw of a few hundred values
    BATCH = 16_384

    def __init__(self, size: int, dtype: torch.dtype, seed: int | None = None) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"Gaussian noise is drawn in float32 or float64, not {dtype}")
        float_type = np.float32 if dtype == torch.float32 else np.float64
        self._float = np.dtype(float_type)
        self._word = np.dtype(f"u{self._float.itemsize}")
        self._size = size
        self._steps = max(1, self.BATCH // max(size, 1))  # steps' noise made per call
        self._pairs = (size * self._steps + 1) // 2
        made = torch.empty(2 * self._pairs, dtype=dtype)
        # what draw() fills: the values made, or one step's of them in turn
        self.values = made[:size] if self._steps == 1 else torch.empty(size, dtype=dtype)
        self._values, self._made = self.values.numpy(), made.numpy()
        self._used = self._steps  # all used: the first draw makes new ones
        # row 0 takes each pair's cosine value, row 1 its sine value
        self._rows = self._made.reshape(2, self._pairs)
        mantissa = np.finfo(float_type).nmant
        self._shift = 8 * self._float.itemsize - mantissa
        self._one = np.ones(1, self._float).view(self._word)[0]  # the bits of 1.0
        self._below_one = self._float.type(1 - 2.0 ** -(mantissa + 1))
        entropy = secrets.randbits(128) if seed is None else seed
        self._bits = np.random.SFC64(np.random.SeedSequence(
            entropy, spawn_key=(self.NOISE_STREAM,)))

    def draw(self) -> torch.Tensor:
        if self._used == self._steps:
            self._make()
            self._used = 0
        if self._steps > 1:  # (numpy's copy costs a third of torch's at this size)
            start = self._used * self._size
            np.copyto(self._values, self._made[start:start + self._size])
        self._used += 1
        return self.values

    def _make(self) -> None:
        n_words = 2 * self._pairs  # one per uniform
        words = self._bits.random_raw(n_words * self._word.itemsize // 8).view(self._word)
        np.right_shift(words, self._shift, out=words)  # j
        np.bitwise_or(words, self._one, out=words)  # the bits of 1 + j·2^-m
        u = words.view(self._float)  # computed on in place from here
        np.subtract(u, self._below_one, out=u)  # (2j + 1)·2^-(m+1), exactly
        radius, angle = u[:self._pairs], u[self._pairs:]
        np.log(radius, out=radius)
        np.multiply(radius, -2, out=radius)
        np.sqrt(radius, out=radius)
        np.multiply(angle, 2 * math.pi, out=angle)
        np.cos(angle, out=self._rows[0])
        np.sin(angle, out=self._rows[1])
        np.multiply(self._rows, radius, out=self._rows)


class GhostDPSGD:
    """DP-SGD on a model of Linear and ReLU layers, in place: each step is Opacus'
    DPOptimizer step with plain SGD, p -= lr (clipped sum + N(0, (σC)²)) / expected batch
    size; `class_weights` (one per class, each in (0, 1]) scale the clipped gradients."""

    def __init__(self, model: nn.Module, *, lr: float, max_grad_norm: float,
                 noise_multiplier: float, expected_batch_size: float,
                 seed: int | None = None, class_weights: torch.Tensor | None = None) -> None:
        self.layers = linear_layers(model)
        self.max_grad_norm = max_grad_norm
        self.class_weights = checked_class_weights(class_weights)
        self.scale = lr / expected_batch_size
        # The update is scale · (clipped sum + σC · noise); dividing the noise term by
        # scale lets one fused matmul compute the whole bracket (see step).
        self.noise_ratio = noise_multiplier * max_grad_norm
        params = [t for layer, _ in self.layers for t in (layer.weight, layer.bias)]
        self.noise = GaussianNoise(sum(p.numel() for p in params), params[0].dtype, seed)
        # views of the noise buffer shaped like each layer's (weight, bias), made once
        parts = [part.view_as(p) for part, p in zip(
            self.noise.values.split([p.numel() for p in params]), params, strict=True)]
        self.noise_parts = list(zip(parts[::2], parts[1::2], strict=True))

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor,
             gradients: torch.Tensor | None = None) -> None:
        """One step on the rows (x, y). `gradients`, one flat row per example in parameter
        order, are further examples whose gradients are given rather than computed: a
        white-box privacy audit's canaries (Steinke, Nasr, Jagielski 2023,
        arXiv:2305.08846, §7), clipped like any row (no class weight: they have no label)
        and summed into the same noised update."""
        grads, factor = _clipped_layer_grads(self.layers, x, y, self.max_grad_norm,
                                             self.class_weights)
        if gradients is not None and len(gradients):
            clipped = clip_factor(torch.linalg.vector_norm(gradients, dim=1),
                                  self.max_grad_norm) @ gradients
            sizes = [t.numel() for layer, _ in self.layers for t in (layer.weight, layer.bias)]
            parts = clipped.split(sizes)
            for (layer, _), w, b in zip(self.layers, parts[::2], parts[1::2], strict=True):
                layer.weight.sub_(w.view_as(layer.weight), alpha=self.scale)
                layer.bias.sub_(b, alpha=self.scale)
        self.noise.draw()  # into the buffer that noise_parts view
        for (layer, _), (w_noise, b_noise), (u, v, g) in zip(
                self.layers, self.noise_parts, grads, strict=True):
            # σC·noise + clipped sum in one BLAS call each (beta scales the noise in place)
            layer.weight.sub_(w_noise.addmm_(u.T, v, beta=self.noise_ratio), alpha=self.scale)
            layer.bias.sub_(b_noise.addmv_(g.T, factor, beta=self.noise_ratio),
                            alpha=self.scale)
