from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sangsaeng.client.data import load_local_data, read_table
from sangsaeng.client.partner import PartnerConfig, PartnerConfigError
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


def test_partner_config_from_node_config(tmp_path: Path) -> None:
    cfg = PartnerConfig.from_node_config(
        {"partner": "acme", "dataset": "caravan", "data-path": str(tmp_path / "a.csv")})
    assert cfg.partner == "acme" and cfg.data_path == tmp_path / "a.csv"
    with pytest.raises(PartnerConfigError, match="missing 'dataset', 'data-path'"):
        PartnerConfig.from_node_config({"partner": "acme"})
    with pytest.raises(PartnerConfigError, match="invalid 'partner'"):
        PartnerConfig.from_node_config({"partner": "", "dataset": "d", "data-path": "x.csv"})
