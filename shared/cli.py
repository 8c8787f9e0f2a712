"""What every role's CLI shares: how a failure is shown (one red line, an exit code,
nothing changed), and the options and session of a client of the coordinator's API."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .http import API_URL_ENV, CA_FILE_ENV, TOKEN_ENV, TOKEN_FILE_ENV, ApiClient, ApiError

USAGE, REFUSED = 2, 1  # exit codes: bad input (nothing was done); a refusal or a failure

errors = Console()  # stdout, where each CLI prints everything else

UrlOption = Annotated[str, typer.Option("--api-url", envvar=API_URL_ENV,
                                        help="The coordinator's API.")]
# A token never goes on the command line, where every process list shows it.
TokenOption = Annotated[Path | None, typer.Option(
    "--token-file", envvar=TOKEN_FILE_ENV, show_default=False,
    help=f"A file holding your API token (or put the token in {TOKEN_ENV}).")]
CaOption = Annotated[Path | None, typer.Option(
    "--ca-file", envvar=CA_FILE_ENV, show_default=False,
    help="The CA certificate (PEM) the coordinator's certificate is verified with "
         "(default: the system's CAs).")]

Client = TypeVar("Client", bound=ApiClient)


def fail(message: str, code: int = REFUSED) -> NoReturn:
    """Print `message` as one red line (markup in it is shown as text) and exit."""
    errors.print(f"[red]{escape(message)}[/]")
    raise typer.Exit(code)


@contextmanager
def failing_on(*kinds: type[Exception], code: int = USAGE) -> Iterator[None]:
    """Turn the given errors, raised inside, into `fail(str(err), code)`."""
    try:
        yield
    except kinds as err:
        fail(str(err), code)


def read_token(token_file: Path | None) -> str:
    """The API token: from `token_file`, else from the environment."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as err:
            fail(f"--token-file: cannot read {token_file} ({err.strerror})", USAGE)
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        fail(f"no API token: give --token-file, or set {TOKEN_ENV}", USAGE)
    return token


@contextmanager
def api_session(client: Callable[..., Client], url: str, token_file: Path | None,
                ca_file: Path | None) -> Iterator[Client]:
    """An API client; its refusals become a red line and exit code 1."""
    token = read_token(token_file)
    with failing_on(ApiError, code=REFUSED), client(url, token, ca_file=ca_file) as api:
        yield api
