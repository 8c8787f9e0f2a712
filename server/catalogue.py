"""The dataset catalogue startups browse: each dataset's public schema and rounded size.

Entries are registered by the operator (`sangsaeng admin dataset add FILE`), as agreed
with the partners who hold the data; the coordinator never sees a row. A task is checked
against its dataset's entry before it is started, so a typo fails at once with a 422
instead of at every partner.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sangsaeng.shared.task import Feature, TargetSpec, TaskSpec, describe

ROW_ROUNDING = 100  # sizes are published to the nearest hundred rows, never exactly


class CatalogueError(ValueError):
    pass


class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    features: list[Feature] = Field(min_length=1)
    target: TargetSpec
    partners: int = Field(ge=0, description="partner datasets holding this schema")
    rows: int = Field(ge=0, description=f"rows over all partners, to the nearest "
                                        f"{ROW_ROUNDING}")

    @field_validator("rows")
    @classmethod
    def _rounded(cls, rows: int) -> int:
        return round(rows / ROW_ROUNDING) * ROW_ROUNDING

    @classmethod
    def from_file(cls, path: Path) -> DatasetEntry:
        """Read an entry from a .toml or .json file."""
        if path.suffix not in (".toml", ".json"):
            raise CatalogueError(f"{path}: a catalogue file must end in .toml or .json")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                return cls.model_validate_json(text)
            return cls.model_validate(tomllib.loads(text))
        except FileNotFoundError:
            raise CatalogueError(f"catalogue file not found: {path}") from None
        except tomllib.TOMLDecodeError as err:
            raise CatalogueError(f"{path}: not valid TOML ({err})") from None
        except ValidationError as err:
            raise CatalogueError(f"{path}: {describe(err, 'catalogue entry')}") from None


def task_problems(task: TaskSpec, entry: DatasetEntry) -> list[tuple[tuple[str | int, ...], str]]:
    """(field path, reason) for each part of `task` its dataset's schema does not have."""
    columns = {f.name: f for f in entry.features}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, feature in enumerate(task.features):
        known = columns.get(feature.name)
        if known is None:
            problems.append((("features", i, "name"),
                             f"dataset '{entry.name}' has no feature column '{feature.name}'"))
        elif known.kind != feature.kind:
            problems.append((("features", i, "kind"), f"column '{feature.name}' is "
                             f"{known.kind} in dataset '{entry.name}'"))
    if task.target.name != entry.target.name:
        problems.append((("target", "name"), f"dataset '{entry.name}' has target column "
                         f"'{entry.target.name}'"))
    elif {str(c) for c in task.target.classes} != {str(c) for c in entry.target.classes}:
        problems.append((("target", "classes"), f"must be the classes of dataset "
                         f"'{entry.name}': {', '.join(str(c) for c in entry.target.classes)}"))
    return problems
