from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sangsaeng.client.data import holdout_rows
from sangsaeng.shared.preprocess import DataValidationError, encode, input_dim
from sangsaeng.shared.task import TaskSpec

SECRET = 987654.321  # a value that must never appear in an error message
KEY = "ab" * 16


def table(**overrides: object) -> pd.DataFrame:
    data: dict[str, object] = {
        "age": [18, 59, 100, 40],
        "income": [0.0, 5e5, 1e6, 2.5e5],
        "region": ["north", "south", "3", "north"],
        "churn": ["no", "yes", "no", "no"],
        "customer_id": [11, 12, 13, 14],  # columns the task does not name are ignored
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_encode_uses_declared_schema_only(small_task: TaskSpec) -> None:
    x, y, labelled = encode(table(), small_task)
    assert x.shape == (4, input_dim(small_task)) == (4, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], [0.0, 41 / 82, 1.0, 22 / 82], rtol=1e-6)
    np.testing.assert_allclose(x[:, 1], [0.0, 0.5, 1.0, 0.25])
    np.testing.assert_array_equal(x[:, 2:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(y, [0, 1, 0, 0])
    assert labelled.all()
    # scaling does not depend on the data: a one-row table encodes the same row the same way
    x1, _, _ = encode(table().iloc[[1]], small_task)
    np.testing.assert_array_equal(x1[0], x[1])


def test_integer_coded_categories_match(small_task: TaskSpec) -> None:
    x, _, _ = encode(table(region=["north", "south", 3, "north"]), small_task)
    assert x[2, 4] == 1.0
    x, _, _ = encode(table(region=[3.0, 3.0, 3.0, 3.0]), small_task)  # Parquet may store floats
    assert (x[:, 4] == 1).all()


@pytest.mark.parametrize(("column", "values", "encoded"), [
    ("age", [18, np.nan, 30, 40], 0.0),  # missing: the declared fill (default: min)
    ("age", ["18", "x", "30", "40"], 0.0),  # not a number: missing
    ("age", [18, -SECRET, 30, 40], 0.0),  # out of range: clipped
    ("income", [0.0, SECRET * 10, 1.0, 2.0], 1.0),
    ("income", [0.0, np.inf, 1.0, 2.0], 1.0),
    ("age", [True, False, True, True], 0.0),  # booleans are no numbers: missing
])
def test_any_numeric_value_encodes_without_an_error(small_task: TaskSpec, column: str,
                                                    values: list[object],
                                                    encoded: float) -> None:
    """issue 15, finding 3: a value outside the declared range, a NaN or a string made
    the partner refuse and name the column, before any budget was spent — a free oracle
    (bisecting a range gave one person's exact value in 30 queries)."""
    x, _, labelled = encode(table(**{column: values}), small_task)
    assert x[1, 0 if column == "age" else 1] == encoded and labelled.all()
    assert np.isfinite(x).all() and ((0 <= x) & (x <= 1)).all()


@pytest.mark.parametrize("region", [["north", f"east{SECRET}", "3", "north"],
                                    ["north", None, "3", "north"], [1.5, 1.0, 3.0, 3.0]])
def test_undeclared_or_missing_categories_encode_as_zeros(small_task: TaskSpec,
                                                          region: list[object]) -> None:
    x, _, _ = encode(table(region=region), small_task)
    assert (x[1, 2:] == 0).all()


def test_rows_without_a_declared_label_take_no_part(small_task: TaskSpec) -> None:
    _, y, labelled = encode(table(churn=["no", "maybe", None, "yes"]), small_task)
    np.testing.assert_array_equal(labelled, [True, False, False, True])
    np.testing.assert_array_equal(y[labelled], [0, 1])


def test_an_empty_table_encodes_to_nothing(small_task: TaskSpec) -> None:
    x, y, labelled = encode(table().iloc[0:0], small_task)
    assert x.shape == (0, 5) and len(y) == len(labelled) == 0


@pytest.mark.parametrize("column", ["income", "churn"])
def test_only_a_missing_column_is_refused(small_task: TaskSpec, column: str) -> None:
    with pytest.raises(DataValidationError) as err:
        encode(table().drop(columns=column), small_task)
    assert err.value.column == column and "is missing from the table" in str(err.value)


def test_the_holdout_is_the_partners_and_stable_per_row() -> None:
    rows = pd.DataFrame({"a": np.arange(5000), "b": np.arange(5000) % 7})
    held = holdout_rows(rows, KEY, 0.2)
    np.testing.assert_array_equal(held, holdout_rows(rows, KEY, 0.2))
    assert 0.18 < held.mean() < 0.22
    # another key, another split: no task field can choose or predict it
    assert (held != holdout_rows(rows, "cd" * 16, 0.2)).mean() > 0.2
    # removing one row moves no other row
    np.testing.assert_array_equal(holdout_rows(rows.drop(index=17), KEY, 0.2),
                                  np.delete(held, 17))
