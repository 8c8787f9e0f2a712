"""The `sangsaeng` command run in this process, as a subprocess would run it but without
paying the interpreter's start and imports on every call."""

from __future__ import annotations

import subprocess

from typer.testing import CliRunner

from sangsaeng.cli import app


def sangsaeng(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sangsaeng ARGS` with `env` added to the environment; its exit code and output.
    Rich sizes its tables from COLUMNS when it prints, so wide output is not wrapped."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["sangsaeng", *args], result.exit_code, result.stdout,
                                       result.stderr)
