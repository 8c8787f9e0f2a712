"""The non-private, centralized baseline: what DP and federation cost, on the same model.

Only the demo can compute it, because only the demo holds every partner's file.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sangsaeng.client.data import LocalData
from sangsaeng.shared.metrics import roc_auc
from sangsaeng.shared.models import build_model
from sangsaeng.shared.task import TaskSpec


def pooled_holdout_auc(parts: list[LocalData], model: nn.Module) -> float | None:
    """The AUC of `model` on every partner's holdout rows pooled: only the demo holds them
    all (partners release DP loss and accuracy, not AUC)."""
    return pooled_holdout_scores(parts, model)[1]


def pooled_holdout_scores(parts: list[LocalData], model: nn.Module
                          ) -> tuple[float, float | None]:
    """(accuracy, AUC of the last class) of `model` on every partner's holdout rows
    pooled; AUC is None where the rows hold one class."""
    model.eval()
    with torch.no_grad():
        x_hold = torch.from_numpy(np.concatenate([p.x_holdout for p in parts]))
        probabilities = torch.softmax(model(x_hold), dim=1)
    labels = np.concatenate([p.y_holdout for p in parts])
    accuracy = float((probabilities.argmax(dim=1).numpy() == labels).mean())
    return accuracy, roc_auc(probabilities[:, -1].numpy(), labels)


# A task that leaves its batch and epochs to the partners' planner has none to copy: the
# baseline then trains as the demo's task did before it planned them (batch 64, 10 epochs
# in all), which is where non-private training of the demo's model levels off.
BASELINE_BATCH = 64
BASELINE_EPOCHS = 10
# Standard non-private recipes (learning rate, epochs; batch BASELINE_BATCH) the baseline
# also tries: DP training's own recipe can overfit without noise (the demo's large-batch,
# 80-epoch run does), and a baseline below its best would flatter DP.
RECIPES = ((1.0, 10), (0.3, 20), (0.1, 40))


def centralized_model(task: TaskSpec, parts: list[LocalData],
                      start: dict[str, torch.Tensor] | None = None, *,
                      epochs: int | None = None, batch_size: int | None = None,
                      learning_rate: float | None = None, seed: int | None = None
                      ) -> nn.Module:
    """Pool every partner's training split and train with plain SGD from the same start
    (the startup's base model, or the seeded initialisation): by default with the task's
    learning rate and batch, for as many epochs as the federated run does in total."""
    x = torch.from_numpy(np.concatenate([p.x_train for p in parts]))
    y = torch.from_numpy(np.concatenate([p.y_train for p in parts]))
    if epochs is None:
        epochs = (task.rounds * task.local_epochs if task.local_epochs is not None
                  else BASELINE_EPOCHS)
    batch_size = batch_size or task.batch_size or BASELINE_BATCH
    model = build_model(task, seed=task.seed)
    if start is not None:
        model.load_state_dict(start)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate or task.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(task.seed if seed is None else seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=generator).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model


def centralized_auc(task: TaskSpec, parts: list[LocalData],
                    start: dict[str, torch.Tensor] | None = None) -> float | None:
    """The best AUC on the pooled holdouts (the rows partners hold out) of centralized_model
    with the federated run's own recipe and with each of RECIPES."""
    models = [centralized_model(task, parts, start)] + [
        centralized_model(task, parts, start, epochs=epochs, batch_size=BASELINE_BATCH,
                          learning_rate=lr) for lr, epochs in RECIPES]
    aucs = [auc for auc in (pooled_holdout_auc(parts, m) for m in models) if auc is not None]
    return max(aucs, default=None)
