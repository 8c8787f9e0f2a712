"""Every command the README and docs show, checked against the commands that exist: each
`sangsaeng ...` line names a real command and only options it has; each `flower-...` line
only options Flower's binary has (and `--insecure`, while partners connect without TLS);
each `make ...` line a target of the Makefile."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from sangsaeng.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def shown_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of each command line in a fenced block: `$ ` prompts and trailing
    comments dropped, backslash continuations joined."""
    found = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if re.match(r"(sangsaeng|flower-super\w+|make)\b", line):
                    argv = shlex.split(line, comments=True)
                    found.append((f"{doc.relative_to(ROOT)}: {line[:60]}", argv))
    return found


COMMANDS = shown_commands()


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_the_docs_show_commands_of_every_kind() -> None:
    kinds = {argv[0] for _, argv in COMMANDS}
    assert {"sangsaeng", "make"} <= kinds, kinds


@pytest.mark.parametrize(("where", "argv"), [c for c in COMMANDS if c[1][0] == "sangsaeng"],
                         ids=[w for w, a in COMMANDS if a[0] == "sangsaeng"])
def test_each_sangsaeng_command_exists_with_its_options(where: str, argv: list[str]) -> None:
    command: click.Command = typer.main.get_command(app)
    for word in argv[1:]:
        if not isinstance(command, click.Group) or word.startswith("-"):
            break
        assert word in command.commands, f"{where}: no command '{word}'"
        command = command.commands[word]
    assert not isinstance(command, click.Group), f"{where}: names a group, not a command"
    unknown = {word.split("=")[0] for word in argv if word.startswith("--")} - options_of(command)
    assert not unknown, f"{where}: no option {', '.join(sorted(unknown))}"


def test_supernodes_shown_together_listen_on_ports_of_their_own() -> None:
    """Two partners' SuperNodes on one host each need a --port of their own."""
    by_doc: dict[str, list[list[str]]] = {}
    for where, argv in COMMANDS:
        if argv[:3] == ["sangsaeng", "client", "node"]:
            by_doc.setdefault(where.split(":")[0], []).append(argv)
    for doc, nodes in by_doc.items():
        if len(nodes) > 1:
            ports = [argv[argv.index("--runtime-port") + 1] for argv in nodes
                     if "--runtime-port" in argv]
            assert len(set(ports)) == len(nodes), f"{doc}: SuperNodes share a port"


def test_each_make_target_exists() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for where, argv in COMMANDS:
        if argv[0] == "make":
            assert set(argv[1:]) <= targets, f"{where}: no make target {argv[1:]}"
