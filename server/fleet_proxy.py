"""The only door partners get: a reverse proxy that forwards the SuperLink's Fleet API
(`POST /v1/fleet/*`) and nothing else.

In Flower 1.42 the Fleet, Control and Runtime APIs share one HTTP port. The SuperLink
therefore listens on loopback (or a private address) only, and partners' SuperNodes
dial this proxy instead: the Control API, which has no authentication in open-source
Flower, and the Runtime API stay out of their reach. Put TLS in front of it in real
deployments (deploy/README.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

FLEET_PREFIX = "/v1/fleet/"
UPSTREAM_TIMEOUT = 60.0
# Hop-by-hop headers (RFC 9110, 7.6.1) and those httpx/uvicorn set for each hop themselves.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                "trailer", "transfer-encoding", "upgrade", "host", "content-length",
                "content-encoding"}


def create_fleet_proxy(superlink_address: str) -> Starlette:
    """A Starlette app forwarding Fleet calls to the SuperLink at `superlink_address`."""
    client = httpx.AsyncClient(base_url=f"http://{superlink_address}", timeout=UPSTREAM_TIMEOUT)

    async def forward(request: Request) -> Response:
        try:
            upstream = await client.post(
                request.url.path, content=await request.body(),
                headers=_end_to_end(request.headers.items()),
            )
        except httpx.HTTPError as err:
            return PlainTextResponse(f"the SuperLink did not answer ({type(err).__name__})", 502)
        return Response(upstream.content, upstream.status_code,
                        headers=_end_to_end(upstream.headers.items()))

    async def refuse(_: Request) -> Response:
        return PlainTextResponse("not found", 404)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[
        Route(FLEET_PREFIX + "{call:str}", forward, methods=["POST"]),
        Route("/{anything:path}", refuse, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ], lifespan=lifespan)


def _end_to_end(headers: object) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in _HOP_HEADERS}  # type: ignore[attr-defined]
