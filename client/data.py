"""Load a partner's table (CSV or Parquet), encode it by the task's schema, and split the
holdout rows by a secret only the partner holds. A text column's encoder outputs are
computed once and kept in the partner's cache folder (they never leave it)."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sangsaeng.shared.preprocess import (
    DataValidationError,
    TextInputs,
    as_text,
    encode,
    text_inputs,
)
from sangsaeng.shared.task import TaskSpec, TextFeature

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LocalData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray


def _read_csv(path: Path) -> pd.DataFrame:
    # Every cell as its text; a byte that is not UTF-8 becomes U+FFFD and a line with more
    # fields than the header is left out: one bad record never stops the whole dataset.
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                       encoding_errors="replace", on_bad_lines="skip")


READERS = {".csv": _read_csv, ".parquet": pd.read_parquet}


def read_table(path: Path) -> pd.DataFrame:
    """Read the whole table, every cell as its own text (shared/preprocess.py says why).
    Errors say what is wrong with the file, never what is in it."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataValidationError(None, f"data file must be .csv or .parquet, not '{path.suffix}'")
    if not path.is_file():
        raise DataValidationError(None, "data file does not exist")
    try:
        table = reader(path)
    except Exception:  # neither the parser's message nor its kind: both describe content
        log.exception("data file cannot be read")
        raise DataValidationError(None, "data file cannot be read") from None
    return table.apply(as_text)


def holdout_rows(table: pd.DataFrame, key: str, fraction: float) -> np.ndarray:
    """Which rows are held out: each row by a keyed hash of its whole content, so the
    split is the same in every round, run and process, no task field can choose it, and
    adding or removing one row moves no other (each row's place is its own)."""
    content = pd.util.hash_pandas_object(table.apply(as_text), index=False).to_numpy(
        dtype=np.uint64)
    secret = bytes.fromhex(key)
    keyed = np.fromiter(
        (int.from_bytes(hashlib.blake2b(int(h).to_bytes(8, "little"), key=secret,
                                        digest_size=8).digest(), "little") for h in content),
        dtype=np.float64, count=len(content))
    return keyed < fraction * 2.0**64


def cached_text_inputs(cache_dir: Path) -> TextInputs:
    """text_inputs, kept in `cache_dir`: computed on the first round that needs them
    (seconds to minutes: the encoder runs over every row), read back on every later one.
    An entry is named by its column, the encoder settings and the digest of the column's
    texts; writing one removes the column's entries of other texts, so a changed data
    file leaves no copy of its old rows' states behind."""

    def cached(task: TaskSpec, feature: TextFeature, texts: list[str]) -> np.ndarray:
        column = hashlib.sha256(feature.name.encode()).hexdigest()[:16]
        settings = hashlib.sha256(task.model.model_dump_json(
            include={"encoder", "mode", "max_tokens", "adapter_layers"}).encode()
        ).hexdigest()[:16]
        content = hashlib.sha256()
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")
            content.update(len(data).to_bytes(8, "little") + data)
        texts_digest = content.hexdigest()[:32]
        path = cache_dir / f"{column}-{settings}-{texts_digest}.npy"
        if path.is_file():
            return np.load(path, allow_pickle=False)
        log.info("computing %s inputs of a text column for %d rows (cached afterwards)",
                 task.model.encoder, len(texts))
        block = text_inputs(task, feature, texts, progress=_log_progress)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with partial.open("wb") as f:
            np.save(f, block, allow_pickle=False)
        os.replace(partial, path)
        for old in cache_dir.glob(f"{column}-*.npy"):
            if not old.name.endswith(f"-{texts_digest}.npy"):
                old.unlink(missing_ok=True)
        return block

    return cached


def _log_progress(done: int, total: int) -> None:
    if done == total or (done // 64) % 10 == 0:  # about every 640 rows (64 a batch)
        log.info("encoded %d of %d rows", done, total)


def load_local_data(path: Path, task: TaskSpec, holdout_key: str,
                    holdout_fraction: float, cache_dir: Path | None = None) -> LocalData:
    table = read_table(path)
    text = text_inputs if cache_dir is None else cached_text_inputs(cache_dir)
    x, y, labelled = encode(table, task, text)
    holdout = holdout_rows(table, holdout_key, holdout_fraction)
    train, held = labelled & ~holdout, labelled & holdout
    return LocalData(x[train], y[train], x[held], y[held])


def partner_data(policy_path: Path, task: TaskSpec) -> LocalData:
    """The task's data as the partner whose policy this is holds it, with its own holdout
    split (for the demo and benchmarks, which play every partner)."""
    from .ledger import open_ledger
    from .policy import PartnerPolicy

    policy = PartnerPolicy.load(policy_path)
    rules = policy.dataset(task.dataset)
    with open_ledger(policy, task.dataset) as ledger:
        key = ledger.identity().holdout_key
    return load_local_data(rules.data_path, task, key, rules.holdout_fraction,
                           policy.cache_path())
