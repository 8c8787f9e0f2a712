"""The fast DP-SGD step against Opacus on the same batch and seed: the clipped per-sample
gradient sums are Opacus' (`hooks` mode, which materialises every per-sample gradient),
and a whole step — clipping, noise N(0, (σC)²) per coordinate, division by the expected
batch size, SGD — leaves the same weights."""

from __future__ import annotations

import copy
import math
import warnings
from typing import cast

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from sangsaeng.client.ghost_step import (
    GhostDPSGD,
    PoissonSampler,
    UnsupportedModel,
    clipped_sum,
    linear_layers,
)

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

MODELS = {
    "logreg": lambda: nn.Sequential(nn.Linear(20, 2)),
    "mlp": lambda: nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 2)),
    "linear-linear": lambda: nn.Sequential(nn.Linear(20, 8), nn.Linear(8, 2)),
    "mlp256": lambda: nn.Sequential(nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 256),
                                    nn.ReLU(), nn.Linear(256, 2)),
}


def batch(d_in: int, n: int = 290) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, d_in, generator=gen) * 2
    y = torch.randint(0, 2, (n,), generator=gen)
    return x, y


def opacus(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, clip: float,
           lr: float = 0.5):  # type: ignore[no-untyped-def]
    """Opacus' private model and optimizer over `model` (a copy), hooks mode."""
    from opacus import PrivacyEngine

    work = copy.deepcopy(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private, optimizer, loader = PrivacyEngine().make_private(
            module=work, optimizer=torch.optim.SGD(work.parameters(), lr=lr),
            data_loader=loader, noise_multiplier=sigma, max_grad_norm=clip,
            poisson_sampling=True)
    return work, private, optimizer


def median_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The median per-sample gradient norm, by brute force: a clip there clips half."""
    norms = []
    for xi, yi in zip(x, y, strict=True):
        model.zero_grad()
        nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
        grads = [cast(torch.Tensor, p.grad).flatten() for p in model.parameters()]
        norms.append(torch.cat(grads).norm().item())
    return float(np.median(norms))


@pytest.mark.parametrize("name", list(MODELS))
def test_clipped_sums_equal_opacus(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS[name]()
    x, y = batch(cast(nn.Linear, model[0]).in_features)
    clip = median_norm(model, x, y)
    _, private, optimizer = opacus(model, x, y, sigma=0.0, clip=clip)
    nn.functional.cross_entropy(private(x), y).backward()
    optimizer.clip_and_accumulate()
    theirs = [p.summed_grad for p in optimizer.params]
    ours = clipped_sum(linear_layers(model), x, y, clip)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


@pytest.mark.parametrize("name", list(MODELS))
def test_a_whole_step_without_noise_equals_opacus(name: str) -> None:
    """Clipping, summing, dividing by the expected batch size and the SGD update."""
    torch.manual_seed(0)
    model = MODELS[name]().double()  # float64: the comparison is not lost in rounding
    x, y = batch(cast(nn.Linear, model[0]).in_features)
    x = x.double()
    clip, lr, expected = 0.7, 0.5, 256
    work, private, optimizer = opacus(model, x, y, sigma=0.0, clip=clip, lr=lr)
    optimizer.expected_batch_size = expected
    nn.functional.cross_entropy(private(x), y).backward()
    optimizer.step()
    ours = copy.deepcopy(model)
    GhostDPSGD(ours, lr=lr, max_grad_norm=clip, noise_multiplier=0.0,
               expected_batch_size=expected).step(x, y)
    for a, b, before in zip(ours.parameters(), work.parameters(), model.parameters(),
                            strict=True):
        assert not torch.equal(a, before)  # the step moved it
        assert (a - b).abs().max() <= 1e-9 * (b - before).abs().max()


def test_the_noise_is_gaussian_with_opacus_scale() -> None:
    """With every gradient zero (an empty Poisson batch) the update is the noise alone:
    N(0, (σC)²) per coordinate, times lr / expected batch size, as Opacus adds it."""
    model = MODELS["mlp256"]()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    sigma, clip, lr, expected = 1.1, 0.9, 2.0, 4
    x, y = torch.zeros(0, 100), torch.zeros(0, dtype=torch.long)
    GhostDPSGD(model, lr=lr, max_grad_norm=clip, noise_multiplier=sigma,
               expected_batch_size=expected).step(x, y)
    noise = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before)
    noise = noise / (-lr / expected)
    assert noise.std().item() == pytest.approx(sigma * clip, rel=0.01)  # 92,162 draws
    assert abs(noise.mean().item()) < 0.01
    # a seed replays the noise (tests); without one it is drawn from the OS, so it
    # differs even where torch's default generator is in the same state (every process
    # starts it from the same fixed seed)
    def first_noise(seed: int | None) -> torch.Tensor:
        torch.manual_seed(5)
        return GhostDPSGD(MODELS["logreg"](), lr=1, max_grad_norm=1, noise_multiplier=1,
                          expected_batch_size=1, seed=seed).noise.draw().clone()

    assert torch.equal(first_noise(7), first_noise(7))
    assert not torch.equal(first_noise(7), first_noise(8))
    assert not torch.equal(first_noise(None), first_noise(None))


def test_the_noise_on_a_batch_matches_opacus_noise() -> None:
    """On the same batch, the noise each adds to the clipped sum: Opacus'
    (p.grad - p.summed_grad after DPOptimizer.add_noise) and ours (the noisy step minus
    the noiseless one, rescaled) are both N(0, (σC)²) per coordinate."""
    sigma, clip, lr, expected = 1.3, 0.8, 0.5, 64
    torch.manual_seed(4)
    model = MODELS["mlp256"]()
    x, y = batch(100)
    _, private, optimizer = opacus(model, x, y, sigma=sigma, clip=clip)
    nn.functional.cross_entropy(private(x), y).backward()
    optimizer.clip_and_accumulate()
    optimizer.add_noise()
    theirs = torch.cat([(p.grad - p.summed_grad).flatten() for p in optimizer.params])

    def stepped(noise_multiplier: float) -> torch.Tensor:
        work = copy.deepcopy(model)
        GhostDPSGD(work, lr=lr, max_grad_norm=clip, noise_multiplier=noise_multiplier,
                   expected_batch_size=expected, seed=4).step(x, y)
        return torch.cat([p.detach().flatten() for p in work.parameters()])

    ours = (stepped(sigma) - stepped(0.0)) / (-lr / expected)
    assert len(ours) == len(theirs) == 92_162
    for noise in (ours, theirs):
        assert noise.std().item() == pytest.approx(sigma * clip, rel=0.01)
        assert abs(noise.mean().item()) < 0.01
        kurtosis = ((noise - noise.mean()) ** 4).mean() / noise.var() ** 2
        assert kurtosis.item() == pytest.approx(3.0, abs=0.1)  # Gaussian tails
        # the whole distribution: within the KS test's 0.1% bound of N(0, (σC)²)
        standard = noise.double().numpy() / (sigma * clip)
        assert stats.kstest(standard, "norm").statistic < 1.95 / math.sqrt(len(noise))
    assert ours.std().item() == pytest.approx(theirs.std().item(), rel=0.02)
    # and the same distribution as Opacus' noise (torch.normal): two-sample KS at 0.1%
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 0.001


def test_the_sampler_draws_each_row_with_the_rate() -> None:
    sampler = PoissonSampler(1000, 0.05, seed=1)
    counts = np.zeros(1000)
    sizes = []
    for _ in range(4000):
        idx = sampler().numpy()
        assert len(set(idx)) == len(idx)
        counts[idx] += 1
        sizes.append(len(idx))
    assert np.mean(sizes) == pytest.approx(50, rel=0.02)
    assert np.var(sizes) == pytest.approx(1000 * 0.05 * 0.95, rel=0.1)  # binomial
    assert counts.mean() / 4000 == pytest.approx(0.05, rel=0.02)
    assert counts.std() / 4000 < 0.01  # every row about equally often


def test_every_step_draws_fresh_noise() -> None:
    """Two empty-batch steps in a row: each update is its own noise, independent of the
    other (one reused buffer must never mean reused values)."""
    model = MODELS["mlp256"]()
    step = GhostDPSGD(model, lr=1.0, max_grad_norm=1.0, noise_multiplier=1.0,
                      expected_batch_size=1)
    x, y = torch.zeros(0, 100), torch.zeros(0, dtype=torch.long)
    updates = []
    for _ in range(2):
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        step.step(x, y)
        updates.append(torch.cat([p.detach().flatten() for p in model.parameters()]) - before)
    correlation = torch.corrcoef(torch.stack(updates))[0, 1].item()
    assert abs(correlation) < 0.02  # 92,162 pairs: ~0.003 standard deviation
    assert all(u.std().item() == pytest.approx(1.0, rel=0.01) for u in updates)


def test_other_layers_are_refused() -> None:
    with pytest.raises(UnsupportedModel, match="Tanh"):
        linear_layers(nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2)))
    with pytest.raises(UnsupportedModel, match="bias"):
        linear_layers(nn.Sequential(nn.Linear(2, 2, bias=False)))
    frozen = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    frozen[0].weight.requires_grad_(False)
    with pytest.raises(UnsupportedModel, match="frozen"):
        linear_layers(frozen)


def test_a_sample_whose_gradient_is_not_finite_adds_nothing() -> None:
    """issue 15, finding 4: finite weights crafted to overflow on one row made the clipped
    sum NaN exactly when that row was sampled (so the update told whether it was). That
    row now contributes zero, within any clipping bound; the other rows as before."""
    layer = nn.Linear(3, 2)
    model = nn.Sequential(layer)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3e38, 0.5, 0.0], [-3e38, 0.0, 0.5]]))
        layer.bias.zero_()
    x = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 0.3, 0.1]])  # row 1 overflows
    y = torch.tensor([0, 1, 1])
    layers = linear_layers(model)
    with torch.no_grad():
        assert not torch.isfinite(model(x[1:2])).all()  # the crafted row's logits overflow
    every = clipped_sum(layers, x, y, 1.0)
    others = clipped_sum(layers, x[[0, 2]], y[[0, 2]], 1.0)
    for a, b in zip(every, others, strict=True):
        assert torch.isfinite(a).all()
        assert torch.equal(a, b)
    step = GhostDPSGD(model, lr=0.1, max_grad_norm=1.0, noise_multiplier=1.0,
                      expected_batch_size=3, seed=0)
    step.step(x, y)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def brute_force_clipped(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float
                        ) -> list[list[torch.Tensor]]:
    """Each row's gradient of its loss, clipped to `clip`, by one backward pass per row."""
    rows = []
    for xi, yi in zip(x, y, strict=True):
        model.zero_grad()
        nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
        grads = [cast(torch.Tensor, p.grad).clone() for p in model.parameters()]
        norm = torch.cat([g.flatten() for g in grads]).norm().item()
        rows.append([g * min(1.0, clip / (norm + 1e-6)) for g in grads])
    return rows


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_class_weights_scale_each_clipped_gradient_within_the_bound(name: str) -> None:
    """A task's class weights: sample i adds w_{y_i} times its clipped gradient, so no
    sample moves the sum by more than C, whatever its gradient."""
    torch.manual_seed(0)
    model = MODELS[name]().double()
    x, y = batch(20, n=60)
    x = x.double() * 10
    clip = 0.3
    weights = torch.tensor([0.25, 1.0], dtype=torch.float64)
    rows = brute_force_clipped(model, x, y, clip)
    ours = clipped_sum(linear_layers(model), x, y, clip, weights)
    for i, sum_ in enumerate(ours):
        expected = sum(float(weights[label]) * row[i] for label, row in zip(y, rows,
                                                                             strict=True))
        torch.testing.assert_close(sum_, expected, rtol=1e-9, atol=1e-12)
    # one row alone moves the sum by w_y min(|g|, C) <= C: exactly w_y C when clipped
    raw = [torch.cat([g.flatten() for g in row]).norm().item()
           for row in brute_force_clipped(model, x, y, float("inf"))]
    assert sum(r > clip for r in raw) > len(raw) // 2  # most rows are clipped
    for i in range(len(y)):
        alone = clipped_sum(linear_layers(model), x[i:i + 1], y[i:i + 1], clip, weights)
        norm = torch.cat([g.flatten() for g in alone]).norm().item()
        assert norm == pytest.approx(float(weights[y[i]]) * min(raw[i], clip), rel=1e-5)
        assert norm <= clip * (1 + 1e-9)


def test_class_weights_above_one_or_not_positive_are_refused() -> None:
    for bad in ([0.5, 1.5], [0.0, 1.0], [-0.1, 1.0]):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            GhostDPSGD(MODELS["logreg"](), lr=1, max_grad_norm=1, noise_multiplier=1,
                       expected_batch_size=1, class_weights=torch.tensor(bad))


def test_a_whole_weighted_step_moves_by_the_weighted_clipped_sum() -> None:
    """The step itself (σ = 0) applies the weighted clipped sum: p -= lr / B · Σ w c g."""
    torch.manual_seed(1)
    model = MODELS["mlp"]().double()
    x, y = batch(20, n=50)
    x = x.double()
    weights = torch.tensor([1.0, 0.1], dtype=torch.float64)
    expected = clipped_sum(linear_layers(model), x, y, 0.5, weights)
    before = copy.deepcopy(model)
    GhostDPSGD(model, lr=0.7, max_grad_norm=0.5, noise_multiplier=0.0, expected_batch_size=8,
               class_weights=weights).step(x, y)
    for p, q, s in zip(model.parameters(), before.parameters(), expected, strict=True):
        torch.testing.assert_close(p, q - 0.7 / 8 * s, rtol=1e-9, atol=1e-12)
