"""Encode a table with the task's declared schema only: no answer depends on the data.

Scaling ranges, category vocabularies and missing-value rules come from the schema, never
from the data, so no statistic of the data is computed here, and nothing about the values
decides whether a partner answers: out-of-range numbers are clipped to the declared range,
missing or non-numeric ones take the declared fill value, undeclared or missing categories
encode as all zeros, and a row without a declared label takes no part. The one refusal is
a schema fact the partner declared itself: a column missing from the table.

Every cell is read from its own text, never through the column's dtype: pandas infers a
column's dtype from all its values, so one row (a blank in an integer column, a word in a
boolean one) would otherwise change how every other row of the column encodes — and DP's
bound on one record's influence would not hold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from . import encoders
from .task import CategoricalFeature, NumericFeature, TaskSpec, TextFeature

# A text column's block of model inputs, from its cells' texts (a partner caches them)
TextInputs = Callable[[TaskSpec, TextFeature, list[str]], np.ndarray]


class DataValidationError(ValueError):
    """The table does not have the task's columns. Carries no data values."""

    def __init__(self, column: str | None, problem: str) -> None:
        self.column = column
        self.problem = problem
        where = f"column '{column}'" if column else "table"
        super().__init__(f"{where}: {problem}")


def input_dim(task: TaskSpec) -> int:
    """The width of the model's head input: a sentence embedding per text column, then
    the table's encoded columns."""
    dim = encoders.ENCODERS[task.model.encoder].dim if task.model.encoder else 0
    return sum(dim if isinstance(f, TextFeature) else 1 if isinstance(f, NumericFeature)
               else len(f.categories) for f in task.features)


def row_width(task: TaskSpec) -> int:
    """The width of one row of model inputs (`encode`'s x): the head's input, but in
    adapters mode the text column's states and mask in place of its embedding."""
    model = task.model
    if model.mode != "adapters":
        return input_dim(task)
    assert model.encoder is not None  # TaskSpec guarantees it for a text model
    dim = encoders.ENCODERS[model.encoder].dim
    return input_dim(task) - dim + model.max_tokens * (dim + 1)


def parameter_count(task: TaskSpec) -> int:
    """The number of trained parameters of the task's registry model (shared/models.py):
    a partner checks it against its policy before anything is built."""
    widths = [input_dim(task), *task.model.hidden, len(task.target.classes)]
    head = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    if task.model.mode != "adapters" or task.model.encoder is None:
        return head
    dim = encoders.ENCODERS[task.model.encoder].dim
    return head + 2 * task.model.adapter_layers * dim * task.model.adapter_rank


def text_inputs(task: TaskSpec, feature: TextFeature, texts: list[str],
                progress: encoders.Progress | None = None) -> np.ndarray:
    """A text column's block of model inputs: its sentence embeddings (head mode), or the
    states entering the adapted layers followed by the attention mask (adapters mode).
    Each row's from its own text only."""
    model = task.model
    assert model.encoder is not None  # TaskSpec guarantees it for a text column
    if model.mode == "head":
        return encoders.embed(model.encoder, texts, model.max_tokens, progress)
    layer = encoders.ENCODERS[model.encoder].layers - model.adapter_layers
    states, mask = encoders.hidden_states(model.encoder, texts, model.max_tokens, layer,
                                          progress)
    return np.concatenate([states.reshape(len(texts), -1), mask], axis=1)


def encode(df: pd.DataFrame, task: TaskSpec, text: TextInputs = text_inputs
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Table -> (model inputs float32 [n, row_width], labels int64 [n], labelled bool [n]):
    the text columns' blocks (`text`), then the other columns, each in task order.
    Unlabelled rows (a missing or undeclared class) get label 0 and labelled False."""
    missing = [c for c in task.columns if c not in df.columns]
    if missing:
        raise DataValidationError(missing[0], "is missing from the table")
    blocks = [text(task, f, as_text(df[f.name]).tolist()) for f in task.features
              if isinstance(f, TextFeature)]
    blocks += [_numeric(df[f.name], f)[:, None] if isinstance(f, NumericFeature)
               else _one_hot(df[f.name], f) for f in task.features
               if isinstance(f, CategoricalFeature | NumericFeature)]
    x = (np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))).astype(
        np.float32, copy=False)
    codes = _codes(df[task.target.name], task.target.classes)
    return x, np.maximum(codes, 0).astype(np.int64), codes >= 0


def as_text(column: pd.Series) -> pd.Series:
    """Each cell's own text: '' for a missing one, str() of any other value."""
    if (pd.api.types.infer_dtype(column, skipna=False) == "string"
            and not column.isna().any()):  # a string dtype's missing cells are NaN
        return column  # already text (a CSV read as text)
    return column.map(_cell_text).astype(object)


def _cell_text(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return ""
    return str(value)


def _numbers(text: pd.Series) -> np.ndarray:
    """Each cell's text as a number, NaN where it is none (an empty cell, 'True', 'abc')."""
    return pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(dtype=np.float64,
                                                                     na_value=np.nan)


def _numeric(column: pd.Series, feature: NumericFeature) -> np.ndarray:
    """Scaled to [0, 1] by the declared range; values outside it clipped (±inf too)."""
    values = _numbers(as_text(column))
    values = np.where(np.isnan(values), feature.fill, values)
    return (np.clip(values, feature.min, feature.max) - feature.min) / (feature.max - feature.min)


def _one_hot(column: pd.Series, feature: CategoricalFeature) -> np.ndarray:
    codes = _codes(column, feature.categories)
    out = np.zeros((len(codes), len(feature.categories)))
    rows = np.flatnonzero(codes >= 0)
    out[rows, codes[rows]] = 1.0
    return out


def _codes(column: pd.Series, declared: list[str | int]) -> np.ndarray:
    """Index of each cell in the declared list, -1 if it is empty or undeclared; a cell
    whose text is a whole number ('3', '3.0') matches the integer category 3."""
    text = as_text(column)
    numbers = _numbers(text)
    whole = np.isfinite(numbers) & (np.floor(numbers) == numbers) & (np.abs(numbers) < 2**62)
    keys = text.to_numpy(dtype=object).copy()
    keys[whole] = numbers[whole].astype(np.int64).astype(str)
    keys[text.to_numpy(dtype=object) == ""] = None
    return pd.Index([str(c) for c in declared]).get_indexer(pd.Series(keys, dtype=object))
