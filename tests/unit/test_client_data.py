from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sangsaeng.client.data import load_local_data, read_table
from sangsaeng.shared.preprocess import DataValidationError
from sangsaeng.shared.task import TaskSpec

ROWS = pd.DataFrame({"age": [20, 30, 40, 50, 60] * 20, "income": [1e3] * 100,
                     "region": ["north", "south", "3", "north", "south"] * 20,
                     "churn": ["no", "yes"] * 50})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".CSV"])
def test_reads_csv_and_parquet(tmp_path: Path, suffix: str, small_task: TaskSpec) -> None:
    path = tmp_path / f"t{suffix}"
    if suffix.lower() == ".csv":
        ROWS.to_csv(path, index=False)
    else:
        ROWS.to_parquet(path, index=False)
    data = load_local_data(path, small_task)
    assert len(data.y_train) + len(data.y_holdout) == 100 and len(data.y_holdout) == 20
    assert data.x_train.shape[1] == 5


def test_too_small_for_a_holdout(tmp_path: Path, small_task: TaskSpec) -> None:
    path = tmp_path / "t.csv"
    ROWS.iloc[:49].to_csv(path, index=False)  # 49 * 0.2 -> a holdout of 10 rows is fine
    load_local_data(path, small_task)
    ROWS.iloc[:47].to_csv(path, index=False)  # 47 * 0.2 -> 9 rows: too few
    with pytest.raises(DataValidationError, match="too few rows for a holdout of at least 10"):
        load_local_data(path, small_task)


def test_file_problems_are_reported_without_content(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="must be .csv or .parquet"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(DataValidationError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    corrupt = tmp_path / "t.parquet"
    corrupt.write_bytes(b"secret-row,1,2\n")
    with pytest.raises(DataValidationError, match=r"cannot be read \(") as err:
        read_table(corrupt)
    assert "secret" not in str(err.value)


def test_policy_files(tmp_path: Path) -> None:
    from sangsaeng.client.policy import PartnerPolicy, PolicyError

    path = tmp_path / "p.toml"
    path.write_text('partner = "acme"\nledger_dir = "l"\n[datasets.d]\ndata_path = "d.csv"\n'
                    'epsilon_cap = 4\ndelta = 1e-5\nmin_noise_multiplier = 0.8\n'
                    'max_sample_rate = 0.1\nmax_rounds_per_run = 5\nallowed_columns = ["a"]\n'
                    'allowed_models = ["logreg"]\nmin_rows = 10\n')
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
