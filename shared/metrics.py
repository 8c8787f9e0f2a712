"""Aggregate metrics that may leave a partner: nothing here describes a single record."""

from __future__ import annotations

import numpy as np
import pandas as pd


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC of binary labels (1 = positive) by the Mann-Whitney rank sum; None if one class."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # ties get their average rank (pandas: scipy.stats costs ~0.6 s to import)
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rounded_count(n: int, to: int = 10) -> int:
    """Example counts leave a partner rounded, never below `to` (FedAvg weights use them)."""
    return max(to, int(round(n / to)) * to)
