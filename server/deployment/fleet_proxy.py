"""The only door partners get: a reverse proxy that forwards the SuperLink's Fleet API
(`POST /v1/fleet/<call>`) and nothing else, and only from partners' networks.

In Flower 1.42 the Fleet, Control and Runtime APIs share one HTTP port. The SuperLink
therefore listens on loopback (or a private address) only, and partners' SuperNodes
dial this proxy instead: the Control API, which has no authentication in open-source
Flower, and the Runtime API stay out of their reach. A SuperNode that joins receives
every round's global model, so the proxy also answers only the networks the operator
names (`--fleet-allow`); put mutual TLS in front of it in real deployments
(deploy/README.md).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Iterable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)
FLEET_CALL = re.compile(r"[a-z][a-z-]{0,63}")  # register-node, pull-messages, ...
LOOPBACK_ONLY = ("127.0.0.0/8", "::1/128")
UPSTREAM_TIMEOUT = 60.0
MAX_BODY = 512 * 2**20  # a model update of a few hundred MB at most
# Hop-by-hop headers (RFC 9110, 7.6.1) and those httpx/uvicorn set for each hop themselves.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                "trailer", "transfer-encoding", "upgrade", "host", "content-length",
                "content-encoding"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def create_fleet_proxy(superlink_address: str,
                       allow: Iterable[str] = LOOPBACK_ONLY) -> Starlette:
    """A Starlette app forwarding Fleet calls from the `allow`ed networks (CIDRs) to the
    SuperLink at `superlink_address`."""
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
    client = httpx.AsyncClient(base_url=f"http://{superlink_address}", timeout=UPSTREAM_TIMEOUT)

    async def forward(request: Request) -> Response:
        if not _allowed(request, networks):
            log.warning("refused a Fleet call from %s: not in --fleet-allow",
                        request.client.host if request.client else "an unknown address")
            return PlainTextResponse("forbidden", 403)
        if not FLEET_CALL.fullmatch(request.path_params["call"]):
            return PlainTextResponse("not found", 404)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return PlainTextResponse("request too large", 413)
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("request too large", 413)
        try:
            upstream = await client.post(request.url.path, content=body,
                                         headers=_end_to_end(request.headers.items()))
        except httpx.HTTPError as err:
            return PlainTextResponse(f"the SuperLink did not answer ({type(err).__name__})", 502)
        response = Response(upstream.content, upstream.status_code)
        for name, value in _end_to_end(upstream.headers.multi_items()):
            response.headers.append(name, value)  # repeated headers stay repeated
        return response

    async def refuse(_: Request) -> Response:
        return PlainTextResponse("not found", 404)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[
        Route("/v1/fleet/{call:str}", forward, methods=["POST"]),
        Route("/{anything:path}", refuse, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ], lifespan=lifespan)


def _allowed(request: Request, networks: list[Network]) -> bool:
    try:
        address = ipaddress.ip_address(request.client.host) if request.client else None
    except ValueError:
        return False
    return address is not None and any(address in net for net in networks)


def _end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers meant for the other end: without hop-by-hop ones, including those the
    Connection header names."""
    headers = list(headers)
    named = {name.strip().lower() for k, v in headers if k.lower() == "connection"
             for name in v.split(",")}
    return [(k, v) for k, v in headers if k.lower() not in _HOP_HEADERS | named]
