"""The partner's privacy policy: its own TOML file, named in the SuperNode's node_config.

Nothing the server sends can change it. A task that breaks it is refused before any data
is touched or any budget is spent, with a reason that names the rule (never data values).

    partner = "hanbit-bank"
    ledger_dir = "ledger"                  # relative paths are relative to this file
    signing_key = "ledger/signing-key.pem" # Ed25519, for signed ledger exports (the default)
    node_key = "ledger/node-key"           # ECDSA, the SuperNode's identity (the default)

    [datasets.caravan]
    data_path = "caravan.parquet"
    schema = "caravan.catalogue.json"      # the catalogue entry: the schema it declares
    rows = 1900                            # the size it publishes (plans q and steps)
    epsilon_cap = 10.0                     # lifetime, for everyone together
    delta = 1e-5
    min_noise_multiplier = 0.8
    max_sample_rate = 0.1
    max_rounds_per_run = 20
    allowed_models = ["logreg", "mlp", "text-classifier"]
    allowed_encoders = ["all-MiniLM-L6-v2"]  # the default: every pinned encoder
    allowed_base_models = ["<sha256>"]     # startups' uploaded weights it will train
    max_text_tokens = 128
    allowed_text_modes = ["head"]          # "adapters" too, to train encoder adapters
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sangsaeng.shared.accounting import MIN_DELTA, Mechanism
from sangsaeng.shared.files import DocumentError, read_toml
from sangsaeng.shared.preprocess import parameter_count
from sangsaeng.shared.rest.catalogue import CatalogueError, DatasetEntry
from sangsaeng.shared.task import Encoder, TaskSpec, describe
from sangsaeng.shared.wire import NODE_CONFIG_POLICY

LEDGER_GLOB = "*.ledger.sqlite"  # one per dataset, named by it
TextMode = Literal["head", "adapters"]
HEAD: TextMode = "head"


class PolicyError(ValueError):
    """The policy file is missing or invalid (a partner's configuration problem)."""


class TaskRefused(ValueError):
    """The partner will not do what the message asks; the reason names the rule."""


class DatasetPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    data_path: Path
    # The dataset's catalogue entry (.toml or .json), the schema the partner declares and
    # the operator publishes: a task must use exactly its columns, ranges and categories.
    schema_path: Path = Field(alias="schema")
    # The size the partner publishes (e.g. rounded to 100): sampling rates and steps are
    # planned from it, so they never reveal the exact row count.
    rows: int = Field(ge=1, le=10**12)
    holdout_fraction: float = Field(default=0.2, gt=0, le=0.5)
    epsilon_cap: float = Field(gt=0)
    delta: float = Field(ge=MIN_DELTA, lt=1)  # the accountant's floor (shared/accounting.py)
    min_noise_multiplier: float = Field(gt=0)
    max_sample_rate: float = Field(gt=0, le=1)
    max_rounds_per_run: int = Field(ge=1)
    max_local_epochs: int = Field(default=10, ge=1)
    max_parameters: int = Field(default=1_000_000, ge=1)  # trained ones
    allowed_models: list[Literal["logreg", "mlp", "text-classifier"]] = Field(min_length=1)
    allowed_encoders: list[Encoder] = Field(default_factory=lambda: list(get_args(Encoder)))
    # What a text task may cost the partner: tokens per text, and the training modes
    # (adapters run encoder layers forward and back for every sampled row: opt in)
    max_text_tokens: int = Field(default=128, ge=8, le=512)
    allowed_text_modes: list[TextMode] = Field(default_factory=lambda: [HEAD])
    # The startups' base models it will train (sha256, as the coordinator's API names
    # them); a task without one starts from a seeded initialisation.
    allowed_base_models: list[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = Field(
        default_factory=list)
    # How long a run's later rounds stay promised after its last reserve (at most): a run
    # that went quiet, or was stopped, holds budget no longer than this.
    max_promise_seconds: float = Field(default=3600, ge=0, le=7 * 86400)

    @property
    def public_train_rows(self) -> int:
        """The training split's size as planned from public figures only."""
        return max(1, round(self.rows * (1 - self.holdout_fraction)))

    def declared(self) -> DatasetEntry:
        try:
            return DatasetEntry.from_file(self.schema_path)
        except CatalogueError:  # names the file's path: stays in the partner's own log
            raise PolicyError("a dataset's schema file named in the policy is missing or "
                              "invalid") from None


class PartnerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str = Field(min_length=1)
    ledger_dir: Path
    signing_key: Path | None = None  # Ed25519, PEM; default: signing-key.pem in ledger_dir
    node_key: Path | None = None  # ECDSA, OpenSSH; default: node-key in ledger_dir
    # Text columns' encoder outputs, computed once (client/data.py); default: cache/ in
    # ledger_dir. Derived from the rows: keep it as private as the data.
    cache_dir: Path | None = None
    datasets: dict[str, DatasetPolicy] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_budget_per_file(self) -> PartnerPolicy:
        """Two datasets on one data file would give its rows two caps."""
        seen: dict[Path, str] = {}
        for name, rules in self.datasets.items():
            other = seen.setdefault(rules.data_path, name)
            if other != name:
                raise ValueError(f"datasets '{other}' and '{name}' name the same data file: "
                                 "one data file has one budget")
        return self

    @classmethod
    def load(cls, path: str | Path) -> PartnerPolicy:
        path = Path(path)
        try:
            policy = cls.model_validate(read_toml(path))
        except DocumentError as err:  # path- and content-free: sent to the coordinator
            if err.problem == "missing":
                raise PolicyError(f"the policy file named in node_config "
                                  f"'{NODE_CONFIG_POLICY}' does not exist") from None
            raise PolicyError(f"the policy file is {err}") from None
        except ValidationError as err:
            raise PolicyError(describe(err, "policy")) from None
        return policy.resolved(path.parent)

    @classmethod
    def from_node_config(cls, node_config: dict[str, object]) -> PartnerPolicy:
        path = node_config.get(NODE_CONFIG_POLICY)
        if not isinstance(path, str) or not path:
            raise PolicyError(f"SuperNode node_config has no '{NODE_CONFIG_POLICY}' (policy file)")
        return cls.load(path)

    def resolved(self, base: Path) -> PartnerPolicy:
        """Relative paths in the file are relative to the file itself."""
        resolved = self.model_copy(update={
            "ledger_dir": base / self.ledger_dir,
            "signing_key": base / self.signing_key if self.signing_key else None,
            "node_key": base / self.node_key if self.node_key else None,
            "cache_dir": base / self.cache_dir if self.cache_dir else None,
            "datasets": {name: d.model_copy(update={"data_path": (base / d.data_path).resolve(),
                                                    "schema_path": base / d.schema_path})
                         for name, d in self.datasets.items()},
        })
        try:  # model_copy skips validators: the resolved paths are checked here
            policy = PartnerPolicy.model_validate(resolved.model_dump(by_alias=True))
        except ValidationError as err:
            raise PolicyError(describe(err, "policy")) from None
        for name, rules in policy.datasets.items():
            if rules.declared().name != name:
                raise PolicyError(f"the schema of dataset '{name}' is the catalogue entry of "
                                  "another dataset")
        return policy

    def dataset(self, name: str) -> DatasetPolicy:
        if name not in self.datasets:
            raise TaskRefused(f"partner '{self.partner}' holds no dataset '{name}'")
        return self.datasets[name]

    def ledger_path(self, dataset: str) -> Path:
        return self.ledger_dir / LEDGER_GLOB.replace("*", dataset)

    def cache_path(self) -> Path:
        return self.cache_dir or self.ledger_dir / "cache"

    def signing_key_path(self) -> Path:
        return self.signing_key or self.ledger_dir / "signing-key.pem"

    def node_key_path(self) -> Path:
        return self.node_key or self.ledger_dir / "node-key"


def check_task(policy: PartnerPolicy, task: TaskSpec) -> DatasetPolicy:
    """Refuse a task the policy does not allow, before any data is read."""
    rules = policy.dataset(task.dataset)
    who = f"partner '{policy.partner}' refuses"
    declared = rules.declared()
    columns = {f.name: f for f in declared.features}
    undeclared = [f.name for f in task.features if f.name not in columns]
    if task.target.name != declared.target.name:
        undeclared.append(task.target.name)
    if undeclared:
        raise TaskRefused(f"{who}: columns not in its declared schema: {', '.join(undeclared)}")
    differs = [f.name for f in task.features if f != columns[f.name]]
    if task.target != declared.target:
        differs.append(task.target.name)
    if differs:  # the declared ranges, categories and fill values, exactly
        raise TaskRefused(f"{who}: columns declared otherwise in its schema: "
                          f"{', '.join(differs)}")
    if task.model.kind not in rules.allowed_models:
        raise TaskRefused(f"{who}: model kind '{task.model.kind}' is not allowed by its policy")
    if (task.model.encoder is not None
            and task.model.encoder not in rules.allowed_encoders):
        raise TaskRefused(f"{who}: encoder '{task.model.encoder}' is not allowed by its "
                          "policy")
    if task.model.text and task.model.max_tokens > rules.max_text_tokens:
        raise TaskRefused(f"{who}: {task.model.max_tokens} tokens per text exceed its maximum "
                          f"of {rules.max_text_tokens}")
    if task.model.text and task.model.mode not in rules.allowed_text_modes:
        raise TaskRefused(f"{who}: training mode '{task.model.mode}' is not allowed by its "
                          "policy")
    if task.base_model is not None and task.base_model not in rules.allowed_base_models:
        raise TaskRefused(f"{who}: base model {task.base_model} is not among the base "
                          "models its policy accepts")
    if (size := parameter_count(task)) > rules.max_parameters:
        raise TaskRefused(f"{who}: the model's {size} trained parameters exceed its "
                          f"maximum of {rules.max_parameters}")
    if task.rounds > rules.max_rounds_per_run:
        raise TaskRefused(f"{who}: {task.rounds} rounds exceed its maximum of "
                          f"{rules.max_rounds_per_run} per run")
    if task.local_epochs is not None and task.local_epochs > rules.max_local_epochs:
        raise TaskRefused(f"{who}: {task.local_epochs} local epochs exceed its maximum of "
                          f"{rules.max_local_epochs}")
    if task.dp.evaluation_noise_multiplier < rules.min_noise_multiplier:
        raise TaskRefused(f"{who}: evaluation noise multiplier "
                          f"{task.dp.evaluation_noise_multiplier:g} is below its minimum "
                          f"{rules.min_noise_multiplier:g}")
    if task.dp.delta > rules.delta:
        raise TaskRefused(f"{who}: delta {task.dp.delta:g} is above its delta {rules.delta:g}")
    return rules


def check_mechanism(policy: PartnerPolicy, rules: DatasetPolicy, planned: Mechanism) -> None:
    """Refuse a planned round whose noise is too low or whose sampling rate is too high."""
    who = f"partner '{policy.partner}' refuses"
    if planned.noise_multiplier < rules.min_noise_multiplier:
        raise TaskRefused(f"{who}: noise multiplier {planned.noise_multiplier:.3g} is below its "
                          f"minimum {rules.min_noise_multiplier:g}")
    if planned.sample_rate > rules.max_sample_rate:
        raise TaskRefused(f"{who}: sampling rate {planned.sample_rate:.3g} is above its "
                          f"maximum {rules.max_sample_rate:g}")
