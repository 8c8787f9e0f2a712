"""DP-SGD with explicit per-sample gradients, for the registry's models that are not a
stack of Linear and ReLU layers (a text-classifier's adapters: client/ghost_step.py has
the fast step for the others).

The mechanism is the ghost step's, which is Opacus' (opacus/optimizers/optimizer.py,
DPOptimizer): each sample's gradient of its cross-entropy loss, over every trained
parameter together, is clipped to norm C with the factor min(1, C / (norm + 1e-6)); the
clipped gradients are summed, N(0, (σC)²) is added to every coordinate, and the sum is
divided by the expected batch size (with `class_weights`, each clipped gradient is first
scaled by its class's weight in (0, 1], as in the ghost step). Per-sample gradients come
from torch.func (vmap of grad over the batch, as Opacus' functorch grad samplers do), so
the only state of size batch × parameters is that of the trained parameters (the adapters
and the head).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .ghost_step import GaussianNoise, checked_class_weights

CHUNK = 32  # rows whose per-sample gradients are computed at once


class PerSampleDPSGD:
    """DP-SGD in place on the parameters of `model` that require gradients."""

    def __init__(self, model: nn.Module, *, lr: float, max_grad_norm: float,
                 noise_multiplier: float, expected_batch_size: float,
                 seed: int | None = None, class_weights: torch.Tensor | None = None) -> None:
        self.model = model
        self.class_weights = checked_class_weights(class_weights)
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.buffers = dict(model.named_buffers())
        self.max_grad_norm = max_grad_norm
        self.scale = lr / expected_batch_size
        self.noise_ratio = noise_multiplier * max_grad_norm
        sizes = [p.numel() for p in self.params.values()]
        first = next(iter(self.params.values()))
        self.noise = GaussianNoise(sum(sizes), first.dtype, seed)
        self.noise_parts = [part.view_as(p) for part, p in zip(
            self.noise.values.split(sizes), self.params.values(), strict=True)]

        def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
                 ) -> torch.Tensor:
            logits = functional_call(model, (params, self.buffers), (x.unsqueeze(0),))
            return nn.functional.cross_entropy(logits, y.unsqueeze(0))

        # in chunks: memory bounded by CHUNK rows, whatever the batch (an adapters row
        # holds its layers' activations for every token)
        self._per_sample = vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=CHUNK)

    def clipped_sum(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Σ_i of sample i's gradient clipped to max_grad_norm, one tensor per parameter."""
        if len(y) == 0:
            return [torch.zeros_like(p) for p in self.params.values()]
        detached = {n: p.detach() for n, p in self.params.items()}
        grads = list(self._per_sample(detached, x, y).values())
        sq_norms = sum(g.flatten(1).square().sum(dim=1) for g in grads)
        assert isinstance(sq_norms, torch.Tensor)
        # A row whose gradient is not finite counts as zero (within any clipping bound, so
        # the sensitivity stays C), as in the ghost step.
        finite = torch.isfinite(sq_norms)
        factor = (self.max_grad_norm / (sq_norms.where(finite, 0.0).sqrt() + 1e-6)
                  ).clamp(max=1.0).where(finite, 0.0)
        if self.class_weights is not None:  # after clipping: each row stays within w C <= C
            factor = factor * self.class_weights[y]
        return [torch.einsum("b,b...->...", factor, g.where(finite.view(-1, *[1] * (g.dim() - 1)),
                                                             0.0))
                for g in grads]

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        sums = self.clipped_sum(x, y)
        self.noise.draw()
        for p, noise, clipped in zip(self.params.values(), self.noise_parts, sums,
                                     strict=True):
            p.sub_(noise.mul_(self.noise_ratio).add_(clipped), alpha=self.scale)
