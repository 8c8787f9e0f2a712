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


def centralized_auc(task: TaskSpec, parts: list[LocalData],
                    start: dict[str, torch.Tensor] | None = None) -> float | None:
    """Pool every partner's training split, train with plain SGD for as many epochs as the
    federated run does in total, from the same start (the startup's base model, or the
    seeded initialisation), and score the pooled holdouts (the rows partners hold out)."""
    x = torch.from_numpy(np.concatenate([p.x_train for p in parts]))
    y = torch.from_numpy(np.concatenate([p.y_train for p in parts]))
    model = build_model(task, seed=task.seed)
    if start is not None:
        model.load_state_dict(start)
    optimizer = torch.optim.SGD(model.parameters(), lr=task.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(task.seed)
    model.train()
    for _ in range(task.rounds * task.local_epochs):
        for batch in torch.randperm(len(y), generator=generator).split(task.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return pooled_holdout_auc(parts, model)
