"""Local DP-SGD with Opacus: Poisson sampling, per-sample clipping, Gaussian noise."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
from torch import nn

from sangsaeng.shared.accounting import ACCOUNTANT, Mechanism, noise_for_target
from sangsaeng.shared.task import TaskSpec


def plan(task: TaskSpec, n_train: int) -> Mechanism:
    """The mechanism one local round will run on `n_train` rows, as Opacus accounts it.

    Opacus' DPDataLoader samples each row with probability 1 / ceil(n / batch)
    (opacus/data_loader.py, DPDataLoader.from_data_loader); its sampler runs int(1 / that)
    steps per epoch (opacus/utils/uniform_sampler.py), one fewer for some sizes through
    float rounding; and PrivacyEngine accounts q = 1 / steps-per-epoch, which is never below
    the true sampling probability, so the epsilon is an upper bound. We plan exactly that.
    With a target epsilon, sigma is chosen so that all rounds of the run stay within it.
    """
    steps_per_epoch = int(1 / (1 / math.ceil(n_train / task.batch_size)))
    sample_rate = 1 / steps_per_epoch
    steps = steps_per_epoch * task.local_epochs
    sigma = task.dp.noise_multiplier
    if sigma is None:
        assert task.dp.target_epsilon is not None  # TaskSpec guarantees one of the two
        sigma = noise_for_target(task.dp.target_epsilon, task.dp.delta, sample_rate,
                                 steps * task.rounds)
    return Mechanism(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, task: TaskSpec,
          mechanism: Mechanism, seed: int | None = None) -> Mechanism:
    """Run one local round of DP-SGD in place on `model`; return what Opacus accounted,
    after checking that it is exactly `mechanism` (if not, `model` is left untouched)."""
    from opacus import PrivacyEngine  # heavy import, only on the training path

    if seed is not None:
        torch.manual_seed(seed)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=task.batch_size)
    work = copy.deepcopy(model)  # Opacus leaves hooks on the module it wraps; keep `model` clean
    optimizer = torch.optim.SGD(work.parameters(), lr=task.learning_rate)
    work.train()
    loss_fn = nn.CrossEntropyLoss()
    # Opacus warns on every call that secure_mode is off (see README, privacy model) and
    # torch about full backward hooks when inputs need no grad; neither is news.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        engine = PrivacyEngine(accountant=ACCOUNTANT)
        private_model, optimizer, loader = engine.make_private(
            module=work, optimizer=optimizer, data_loader=loader,
            noise_multiplier=mechanism.noise_multiplier, max_grad_norm=task.dp.max_grad_norm,
            poisson_sampling=True,
        )
        for _ in range(task.local_epochs):
            for xb, yb in loader:
                optimizer.zero_grad(set_to_none=True)
                loss_fn(private_model(xb), yb).backward()
                optimizer.step()
    done = [Mechanism(noise_multiplier=s, sample_rate=q, steps=n)
            for s, q, n in engine.accountant.history]
    if len(done) != 1 or done[0] != mechanism:  # a bug, not data: discard the update
        raise RuntimeError("Opacus ran a different mechanism than planned")
    model.load_state_dict(work.state_dict())
    return done[0]
