"""Check a table against the task's declared schema and encode it, using the schema only.

Scaling ranges and category vocabularies come from the TaskSpec, never from the data, so
no data-dependent statistic is computed here or has to leave a partner. Errors name the
column and the kind of problem, never a value from the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .task import NumericFeature, TaskSpec


class DataValidationError(ValueError):
    """The table does not match the task's schema. Carries no data values."""

    def __init__(self, column: str | None, problem: str) -> None:
        self.column = column
        self.problem = problem
        where = f"column '{column}'" if column else "table"
        super().__init__(f"{where}: {problem}")


def input_dim(task: TaskSpec) -> int:
    return sum(1 if isinstance(f, NumericFeature) else len(f.categories) for f in task.features)


def validate_table(df: pd.DataFrame, task: TaskSpec) -> None:
    """Raise DataValidationError on the first problem; return None if the table fits."""
    if len(df) == 0:
        raise DataValidationError(None, "has no rows")
    missing = [c for c in task.columns if c not in df.columns]
    if missing:
        raise DataValidationError(missing[0], "is missing from the table")
    for feature in task.features:
        column = df[feature.name]
        if isinstance(feature, NumericFeature):
            _check_numeric(column, feature)
        else:
            _codes(column, feature.name, feature.categories)
    _codes(df[task.target.name], task.target.name, task.target.classes)


def encode(df: pd.DataFrame, task: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """Validated table -> (features float32 [n, input_dim], labels int64 [n])."""
    validate_table(df, task)
    blocks: list[np.ndarray] = []
    for feature in task.features:
        column = df[feature.name]
        if isinstance(feature, NumericFeature):
            scaled = (column.to_numpy(dtype=np.float64) - feature.min) / (feature.max - feature.min)
            blocks.append(scaled[:, None])
        else:
            codes = _codes(column, feature.name, feature.categories)
            blocks.append(np.eye(len(feature.categories))[codes])
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    y = _codes(df[task.target.name], task.target.name, task.target.classes).astype(np.int64)
    return x, y


def holdout_mask(n_rows: int, task: TaskSpec) -> np.ndarray:
    """Deterministic local holdout: the same rows for every round, message and process."""
    n_holdout = max(1, round(n_rows * task.holdout_fraction)) if n_rows > 1 else 0
    order = np.random.default_rng(task.seed).permutation(n_rows)
    mask = np.zeros(n_rows, dtype=bool)
    mask[order[:n_holdout]] = True
    return mask


def _check_numeric(column: pd.Series, feature: NumericFeature) -> None:
    if not (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)):
        raise DataValidationError(feature.name, "must be numeric but holds non-numeric values")
    if column.isna().any():
        raise DataValidationError(feature.name, "has missing values (NaN)")
    values = column.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataValidationError(feature.name, "has infinite values")
    if values.min() < feature.min or values.max() > feature.max:
        raise DataValidationError(
            feature.name, f"has values outside the declared range [{feature.min}, {feature.max}]"
        )


def _codes(column: pd.Series, name: str, declared: list[str | int]) -> np.ndarray:
    """Index of each value in the declared list; integer-coded columns match int categories."""
    if column.isna().any():
        raise DataValidationError(name, "has missing values (NaN)")
    if pd.api.types.is_float_dtype(column):
        if not np.equal(np.mod(column.to_numpy(), 1), 0).all():
            raise DataValidationError(name, "is categorical but holds non-integer numbers")
        column = column.astype(np.int64)
    as_text = column.astype(str)
    categories = pd.Index([str(c) for c in declared])
    codes = categories.get_indexer(as_text)
    if (codes < 0).any():
        raise DataValidationError(name, "has values outside the declared categories")
    return codes
