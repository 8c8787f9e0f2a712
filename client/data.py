"""Load a partner's table (CSV or Parquet), check it against the task, split a local holdout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sangsaeng.shared.preprocess import DataValidationError, encode, holdout_mask
from sangsaeng.shared.task import TaskSpec

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
MIN_HOLDOUT_ROWS = 10  # holdout metrics never describe a handful of records


@dataclass(frozen=True)
class LocalData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray


def read_table(path: Path) -> pd.DataFrame:
    """Read the whole table. Errors say what is wrong with the file, not what is in it."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataValidationError(None, f"data file must be .csv or .parquet, not '{path.suffix}'")
    if not path.is_file():
        raise DataValidationError(None, "data file does not exist")
    try:
        return reader(path)
    except Exception as err:  # parser errors may quote file content: report only the kind
        kind = type(err).__name__
        raise DataValidationError(None, f"data file cannot be read ({kind})") from None


def load_local_data(path: Path, task: TaskSpec) -> LocalData:
    x, y = encode(read_table(path), task)
    holdout = holdout_mask(len(y), task)
    if holdout.sum() < MIN_HOLDOUT_ROWS or holdout.all():
        raise DataValidationError(
            None, f"has too few rows for a holdout of at least {MIN_HOLDOUT_ROWS} rows and "
                  "a training split")
    return LocalData(x[~holdout], y[~holdout], x[holdout], y[holdout])
