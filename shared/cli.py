"""What every role's CLI shares: how a failure is shown (one red line, an exit code,
nothing changed), and the options and session of a client of the coordinator's API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .http import API_URL_ENV, TOKEN_ENV, ApiClient, ApiError

USAGE, REFUSED = 2, 1  # exit codes: bad input (nothing was done); a refusal or a failure

errors = Console()  # stdout, where each CLI prints everything else

UrlOption = Annotated[str, typer.Option("--api-url", envvar=API_URL_ENV,
                                        help="The coordinator's API.")]
TokenOption = Annotated[str, typer.Option("--token", envvar=TOKEN_ENV, show_default=False,
                                          help="Your API token.")]

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


@contextmanager
def api_session(client: Callable[[str, str], Client], url: str, token: str
                ) -> Iterator[Client]:
    """An API client; its refusals become a red line and exit code 1."""
    with failing_on(ApiError, code=REFUSED), client(url, token) as api:
        yield api
