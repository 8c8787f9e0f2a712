"""The demo's real data: the CoIL 2000 insurance customer table shipped in ISLP's wheel
(the text demo's reviews are in reviews.py).

Read straight from the installed files (importing ISLP would pull scikit-learn and more),
checked by sha256, and split into one private file per demo partner, each with the
partner's own policy file next to it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.task import TaskSpec

# The ISLP 0.6.0 wheel's tables the demo and the benchmarks read, by sha256
ISLP_SHA256 = {
    "Caravan.csv": "e89d49b6fb8fe02d76bb5bb80d8e0dab473bf9f6a72515e30c259f6d7da42269",
    # simulated credit-card defaults (ISLR: "Source: Simulated data"): bench/utility.py
    "Default.csv": "d113590204485565bdd692b2d8430e7c2fcc72ec323df92314a745c99a0eefe9",
}
INSTALL_HINT = "pip install --no-deps islp==0.6.0"


class DemoDataError(RuntimeError):
    pass


def default_task_path() -> Path:
    """The demo's task: who buys caravan insurance, from the Caravan table."""
    return Path(str(files("sangsaeng.demo") / "caravan.toml"))


def caravan_path() -> Path:
    return islp_path("Caravan.csv")


def islp_path(name: str) -> Path:
    """One of ISLP_SHA256's tables in the installed ISLP wheel, checked by its sha256."""
    file = f"ISLP/data/{name}"
    try:
        dist = importlib.metadata.distribution("islp")
    except importlib.metadata.PackageNotFoundError:
        raise DemoDataError(f"the demo data ships in ISLP's wheel: {INSTALL_HINT}") from None
    path = Path(str(dist.locate_file(file)))
    if not path.is_file():
        raise DemoDataError(f"{file} is missing from the installed ISLP: {INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ISLP_SHA256[name]:
        raise DemoDataError(f"{path} has sha256 {digest}, expected {ISLP_SHA256[name]}")
    return path


def caravan_columns() -> list[str]:
    return list(pd.read_csv(caravan_path(), nrows=0).columns)


ID_COLUMN = "customer_id"  # like any enterprise table, it has an identifier no task may use


def caravan_table() -> pd.DataFrame:
    """The Caravan table with a customer id column added."""
    table = pd.read_csv(caravan_path())
    table.insert(0, ID_COLUMN, np.arange(100001, 100001 + len(table)))
    return table


def write_partitions(names: list[str], outdir: Path, seed: int = 0,
                     table: pd.DataFrame | None = None) -> list[Path]:
    """Shuffle the table (by default Caravan's) and write one near-equal slice per
    partner. The first partner gets Parquet and the others CSV, so both readers are
    exercised."""
    table = caravan_table() if table is None else table
    order = np.random.default_rng(seed).permutation(len(table))
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, rows) in enumerate(zip(names, np.array_split(order, len(names)), strict=True)):
        part = table.iloc[np.sort(rows)].reset_index(drop=True)
        path = outdir / f"{name}.{'parquet' if i == 0 else 'csv'}"
        if path.suffix == ".parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_csv(path, index=False)
        paths.append(path)
    return paths


CARAVAN_DESCRIPTION = ("CoIL 2000 insurance customers (ISLP Caravan): 85 socio-demographic "
                       "and product-ownership attributes; target: bought caravan insurance")


def write_schema(path: Path, task: TaskSpec, data_paths: list[Path],
                 description: str = CARAVAN_DESCRIPTION, holders: list[str] | None = None
                 ) -> Path:
    """The dataset's catalogue entry with the task's columns: the schema the demo's
    partners declare in their policies and the operator publishes (naming `holders`, if
    given: the partners holding `data_paths`)."""
    entry = DatasetEntry(name=task.dataset, features=task.features, target=task.target,
                         partners=len(data_paths), rows=sum(map(public_rows, data_paths)),
                         description=description, holders=holders or [])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry.model_dump_json(indent=2))
    return path


def public_rows(data_path: Path) -> int:
    """The size a partner publishes for its file: rounded to the nearest hundred."""
    rows = len(pd.read_parquet(data_path) if data_path.suffix == ".parquet"
               else pd.read_csv(data_path, usecols=[0]))
    return max(100, round(rows / 100) * 100)


# What the demo's partners let a round do (their policies' limits; client/policy.py):
# room for the batches and epochs a planner picks for their rows (bench/utility.py:
# q = 1/6 and 16 local epochs a round at ε 5)
MIN_NOISE_MULTIPLIER = 0.5
MAX_SAMPLE_RATE = 0.25
MAX_LOCAL_EPOCHS = 20


def write_policy(path: Path, partner: str, dataset: str, data_path: Path, epsilon_cap: float,
                 schema: Path, rows: int, delta: float = 1e-5,
                 models: tuple[str, ...] = ("logreg", "mlp"),
                 base_models: tuple[str, ...] = (),
                 text_modes: tuple[str, ...] = ("head",),
                 max_sample_rate: float = MAX_SAMPLE_RATE,
                 max_local_epochs: int = MAX_LOCAL_EPOCHS) -> Path:
    """A partner's policy file (see client/policy.py), allowing `models`, the startups'
    `base_models` (sha256), the `text_modes` and rounds up to the sampling rate and local
    epochs given. JSON strings and arrays are valid TOML values, so json.dumps quotes
    them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
partner = {json.dumps(partner)}
ledger_dir = {json.dumps(str(path.parent / f"{partner}-ledger"))}

[datasets.{dataset}]
data_path = {json.dumps(str(data_path))}
schema = {json.dumps(str(schema))}
rows = {rows}
epsilon_cap = {epsilon_cap}
delta = {delta}
min_noise_multiplier = {MIN_NOISE_MULTIPLIER}
max_sample_rate = {max_sample_rate}
max_local_epochs = {max_local_epochs}
max_rounds_per_run = 20
allowed_models = {json.dumps(list(models))}
allowed_base_models = {json.dumps(list(base_models))}
allowed_text_modes = {json.dumps(list(text_modes))}
""")
    return path
