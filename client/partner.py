"""What a partner configures on its own SuperNode (`--node-config`); the server cannot change it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# node_config keys, e.g. --node-config 'partner="acme" dataset="caravan" data-path="/d/a.csv"'
KEYS = {"partner": "partner", "dataset": "dataset", "data_path": "data-path"}


class PartnerConfigError(ValueError):
    """The SuperNode's node_config is incomplete or wrong."""


class PartnerConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    partner: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    data_path: Path

    @classmethod
    def from_node_config(cls, node_config: dict[str, object]) -> PartnerConfig:
        missing = [key for key in KEYS.values() if key not in node_config]
        if missing:
            raise PartnerConfigError(
                "SuperNode node_config is missing " + ", ".join(f"'{k}'" for k in missing)
            )
        try:
            return cls.model_validate({field: node_config[key] for field, key in KEYS.items()})
        except ValidationError as err:
            fields = ", ".join(f"'{KEYS[str(e['loc'][0])]}'" for e in err.errors())
            raise PartnerConfigError(f"SuperNode node_config has invalid {fields}") from None
