from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sangsaeng.client.data import holdout_rows, load_local_data, read_table
from sangsaeng.shared.preprocess import DataValidationError, encode
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.task import TaskSpec

ROWS = pd.DataFrame({"id": range(1000), "age": [20, 30, 40, 50, 60] * 200,
                     "income": [1e3] * 1000,
                     "region": ["north", "south", "3", "north", "south"] * 200,
                     "churn": ["no", "yes"] * 500})
KEY = "5e" * 16


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".CSV"])
def test_reads_csv_and_parquet(tmp_path: Path, suffix: str, small_task: TaskSpec) -> None:
    path = tmp_path / f"t{suffix}"
    if suffix.lower() == ".csv":
        ROWS.to_csv(path, index=False)
    else:
        ROWS.to_parquet(path, index=False)
    data = load_local_data(path, small_task, KEY, 0.2)
    assert len(data.y_train) + len(data.y_holdout) == 1000
    assert 150 < len(data.y_holdout) < 250  # each row independently, with probability 0.2
    assert data.x_train.shape[1] == 5


def test_a_tiny_table_is_no_reason_to_refuse(tmp_path: Path, small_task: TaskSpec) -> None:
    """issue 15, finding 3: "too few rows for a holdout" answered before any budget was
    spent; bisecting the task's holdout fraction gave the exact row count."""
    path = tmp_path / "t.csv"
    ROWS.iloc[:3].to_csv(path, index=False)
    data = load_local_data(path, small_task, KEY, 0.2)
    assert len(data.y_train) + len(data.y_holdout) == 3


def test_file_problems_are_reported_without_content(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="must be .csv or .parquet"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(DataValidationError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    corrupt = tmp_path / "t.parquet"
    corrupt.write_bytes(b"secret-row,1,2\n")
    with pytest.raises(DataValidationError, match=r"^table: data file cannot be read$") as err:
        read_table(corrupt)
    assert "secret" not in str(err.value)


def test_policy_files(tmp_path: Path) -> None:
    from sangsaeng.client.policy import PartnerPolicy, PolicyError

    path = tmp_path / "p.toml"
    path.write_text('partner = "acme"\nledger_dir = "l"\n[datasets.d]\ndata_path = "d.csv"\n'
                    'epsilon_cap = 4\ndelta = 1e-5\nmin_noise_multiplier = 0.8\n'
                    'max_sample_rate = 0.1\nmax_rounds_per_run = 5\nschema = "d.json"\n'
                    'rows = 500\nallowed_models = ["logreg"]\n')
    (tmp_path / "d.json").write_text(DatasetEntry(
        name="d", features=[{"name": "a", "min": 0, "max": 1}],  # type: ignore[list-item]
        target={"name": "t", "classes": [0, 1]}, partners=1, rows=500  # type: ignore[arg-type]
    ).model_dump_json())
    policy = PartnerPolicy.load(path)
    assert policy.ledger_path("d") == tmp_path / "l" / "d.ledger.sqlite"
    assert policy.datasets["d"].data_path == tmp_path / "d.csv"
    path.write_text(path.read_text().replace("epsilon_cap = 4", "epsilon_cap = -1"))
    with pytest.raises(PolicyError, match=r"invalid policy: datasets\.d\.epsilon_cap: Input "
                                          "should be greater than 0"):
        PartnerPolicy.load(path)
    path.write_text("partner = ")
    with pytest.raises(PolicyError, match="not valid TOML"):
        PartnerPolicy.load(path)
    # The parser's own message quotes the file ("Cannot declare ('datasets', ...) twice");
    # a policy error is sent to the coordinator, so only the position is kept.
    path.write_text("[datasets.rare_postcode_4711]\n[datasets.rare_postcode_4711]\n")
    with pytest.raises(PolicyError) as refused:
        PartnerPolicy.load(path)
    assert str(refused.value) == "the policy file is not valid TOML (line 2, column 29)"
    with pytest.raises(PolicyError, match="has no 'policy'"):
        PartnerPolicy.from_node_config({})


def _neighbours(tmp_path: Path, extra: str) -> tuple[Path, Path]:
    """A CSV file, and the same file with one more record."""
    lines = ["age,income,region,churn,id"] + [
        f"{20 + i % 60},{1000 * (i % 7)},{['north', 'south', '3'][i % 3]},"
        f"{['no', 'yes'][i % 2]},{i}" for i in range(600)]
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_text("\n".join(lines) + "\n")
    large.write_text("\n".join([*lines, extra]) + "\n")
    return small, large


@pytest.mark.parametrize("extra", [
    ",,,no,600",  # blanks: pandas would read age and income as floats
    "abc,True,3.0,no,600",  # a word and a boolean
    "20,1000,north,no,600\xe9",  # not UTF-8 (written as latin-1 below)
    "20,1000,north,no,600,surplus",  # a field too many
])
def test_one_record_changes_no_other_rows_encoding_or_split(tmp_path: Path, extra: str,
                                                            small_task: TaskSpec) -> None:
    """Review of issue 15: pandas infers a column's dtype from every value, so one added
    record moved 563 of 1,900 other rows between training and holdout, and re-encoded
    whole columns; a record with a bad byte stopped the dataset with a named error."""
    small, large = _neighbours(tmp_path, "")
    large.write_bytes(small.read_bytes() + extra.encode("latin-1") + b"\n")
    a, b = read_table(small), read_table(large)
    assert len(b) in (600, 601)  # the line with a field too many is left out
    np.testing.assert_array_equal(holdout_rows(a, KEY, 0.2), holdout_rows(b, KEY, 0.2)[:600])
    x_a, y_a, _ = encode(a, small_task)
    x_b, y_b, _ = encode(b, small_task)
    np.testing.assert_array_equal(x_a, x_b[:600])
    np.testing.assert_array_equal(y_a, y_b[:600])
