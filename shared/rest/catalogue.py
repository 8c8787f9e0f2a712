"""The dataset catalogue startups browse: each dataset's public schema and rounded size.

Entries are registered by the operator (`sangsaeng admin dataset add FILE`), as agreed
with the partners who hold the data; the coordinator never sees a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sangsaeng.shared.files import DocumentError, read_document
from sangsaeng.shared.task import Feature, TargetSpec, describe

ROW_ROUNDING = 100  # sizes are published to the nearest hundred rows, never exactly


def not_dot_segment(name: str) -> str:
    """Names that are path segments of pages and endpoints: '.' and '..' would address
    another one."""
    if name in (".", ".."):
        raise ValueError("'.' and '..' are not names")
    return name


class CatalogueError(ValueError):
    pass


class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # a path segment of the catalogue's endpoints and pages: never '.' or '..'
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    features: list[Feature] = Field(min_length=1)
    target: TargetSpec
    partners: int = Field(ge=0, description="partner datasets holding this schema")
    holders: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
                  ] = Field(default_factory=list, description="the partners holding it, "
                            "where they agreed to be named (empty: not published)")
    rows: int = Field(ge=0, description=f"rows over all partners, to the nearest "
                                        f"{ROW_ROUNDING}")

    @field_validator("name")
    @classmethod
    def _segment(cls, name: str) -> str:
        return not_dot_segment(name)

    @field_validator("rows")
    @classmethod
    def _rounded(cls, rows: int) -> int:
        return round(rows / ROW_ROUNDING) * ROW_ROUNDING

    @model_validator(mode="after")
    def _holders(self) -> DatasetEntry:
        if self.holders and len(set(self.holders)) != self.partners:
            raise ValueError(f"'holders' names {len(set(self.holders))} distinct partners, "
                             f"'partners' counts {self.partners}")
        return self

    @classmethod
    def from_file(cls, path: Path) -> DatasetEntry:
        """Read an entry from a .toml or .json file."""
        try:
            return cls.model_validate(read_document(path))
        except DocumentError as err:
            raise CatalogueError(err.about(path, "catalogue")) from None
        except ValidationError as err:
            raise CatalogueError(f"{path}: {describe(err, 'catalogue entry')}") from None
