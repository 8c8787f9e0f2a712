from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sangsaeng.shared.preprocess import (
    DataValidationError,
    encode,
    holdout_mask,
    input_dim,
    validate_table,
)
from sangsaeng.shared.task import TaskSpec

SECRET = 987654.321  # a value that must never appear in an error message


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
    x, y = encode(table(), small_task)
    assert x.shape == (4, input_dim(small_task)) == (4, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], [0.0, 41 / 82, 1.0, 22 / 82], rtol=1e-6)
    np.testing.assert_allclose(x[:, 1], [0.0, 0.5, 1.0, 0.25])
    np.testing.assert_array_equal(x[:, 2:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(y, [0, 1, 0, 0])
    # scaling does not depend on the data: a one-row table encodes the same row the same way
    x1, _ = encode(table().iloc[[1]], small_task)
    np.testing.assert_array_equal(x1[0], x[1])


def test_integer_coded_categories_match(small_task: TaskSpec) -> None:
    x, _ = encode(table(region=["north", "south", 3, "north"]), small_task)
    assert x[2, 4] == 1.0
    x, _ = encode(table(region=[3.0, 3.0, 3.0, 3.0]), small_task)  # Parquet may store floats
    assert (x[:, 4] == 1).all()


@pytest.mark.parametrize(("df", "column", "problem"), [
    (table().iloc[0:0], None, "has no rows"),
    (table().drop(columns="income"), "income", "is missing from the table"),
    (table().drop(columns="churn"), "churn", "is missing from the table"),
    (table(age=["18", "x", "1", "2"]), "age", "must be numeric"),
    (table(age=[18, np.nan, 30, 40]), "age", "missing values"),
    (table(income=[0.0, SECRET * 10, 1.0, 2.0]), "income", "outside the declared range"),
    (table(age=[18, -SECRET, 30, 40]), "age", "outside the declared range"),
    (table(income=[0.0, np.inf, 1.0, 2.0]), "income", "infinite values"),
    (table(region=["north", f"east{SECRET}", "3", "north"]), "region",
     "outside the declared categories"),
    (table(region=["north", None, "3", "north"]), "region", "missing values"),
    (table(region=[1.5, 1.0, 3.0, 3.0]), "region", "non-integer numbers"),
    (table(churn=["no", "maybe", "no", "no"]), "churn", "outside the declared categories"),
    (table(age=[True, False, True, True]), "age", "must be numeric"),
])
def test_bad_data_names_column_not_values(small_task: TaskSpec, df: pd.DataFrame,
                                          column: str | None, problem: str) -> None:
    with pytest.raises(DataValidationError) as err:
        validate_table(df, small_task)
    assert err.value.column == column
    assert problem in str(err.value)
    assert str(SECRET)[:6] not in str(err.value) and "east" not in str(err.value)


def test_holdout_is_deterministic_and_sized(small_task: TaskSpec) -> None:
    a, b = holdout_mask(1000, small_task), holdout_mask(1000, small_task)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 200
    assert holdout_mask(1, small_task).sum() == 0
