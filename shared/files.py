"""Reading the project's documents (tasks, catalogue entries, policies) from .toml or
.json files, with one set of errors for every kind of document."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Literal

Problem = Literal["missing", "suffix", "syntax"]
SUFFIXES = (".toml", ".json")
_WHERE = re.compile(r"\(at (line \d+, column \d+|end of document)\)$")


class DocumentError(ValueError):
    """The file cannot be read as a document. `str()` names neither the path nor any of
    the file's content, only where in it the problem is (a partner's errors are sent to
    the coordinator); `about(path, what)` is the whole story, for the file's owner."""

    def __init__(self, problem: Problem, detail: str, parser_says: str = "") -> None:
        super().__init__(detail)
        self.problem = problem
        self.parser_says = parser_says  # may quote the file: never sent anywhere

    def about(self, path: Path, what: str) -> str:
        if self.problem == "missing":
            return f"{what} file not found: {path}"
        if self.problem == "suffix":
            return f"{path}: a {what} file must end in {' or '.join(SUFFIXES)}"
        return f"{path}: {self} {self.parser_says}".rstrip()


def read_document(path: Path) -> object:
    """The parsed content of a .toml or .json file."""
    return parse_document(path.name, _read(path))


def parse_document(name: str, text: str) -> object:
    """The parsed content of a document named `name` (.toml or .json), e.g. an upload."""
    if not name.endswith(SUFFIXES):
        raise DocumentError("suffix", f"must end in {' or '.join(SUFFIXES)}")
    if name.endswith(".toml"):
        return _toml(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DocumentError("syntax", f"not valid JSON (line {err.lineno}, column "
                                      f"{err.colno})", err.msg) from None


def read_toml(path: Path) -> dict[str, object]:
    """The parsed content of a TOML file, whatever its name ends in."""
    return _toml(_read(path))


def _toml(text: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's message quotes content ("Cannot declare ('x',) twice"); only the
        # position it ends with is kept in str(): tomllib has no line attribute yet.
        where = _WHERE.search(str(err))
        raise DocumentError("syntax", f"not valid TOML ({where.group(1) if where else 'syntax'})",
                            str(err)) from None


def _read(path: Path) -> str:
    if not path.is_file():
        raise DocumentError("missing", "file not found")
    return path.read_text(encoding="utf-8")
