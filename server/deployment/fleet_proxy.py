"""The only door partners get: a reverse proxy that forwards the SuperLink's Fleet API
(`POST /v1/fleet/<call>`) and nothing else, only for registered node keys.

In Flower 1.42 the Fleet, Control and Runtime APIs share one HTTP port. The SuperLink
therefore listens on loopback only, and partners' SuperNodes dial this proxy instead: the
Control API and the Runtime API stay out of their reach. A SuperNode that joins receives
every round's global model, so a call must carry the public key of a registered partner's
node and that key's signature of a fresh timestamp (Flower's `flwr-public-key`,
`flwr-timestamp` and `flwr-signature` headers), checked here before any body is read — a
public key is no secret — and again by the SuperLink, which also binds the key to the
node id in the request. The peer's address is never trusted for identity, and headers
such as X-Forwarded-For are ignored (uvicorn's proxy_headers off); `--fleet-allow`
networks are a second, optional fence. Only the calls that carry models or objects may
send large bodies, and all of them together hold at most IN_FLIGHT_BYTES in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable

import httpx
from flwr.common.constant import SYSTEM_TIME_TOLERANCE, TIMESTAMP_TOLERANCE
from flwr.supercore.primitives.asymmetric import bytes_to_public_key, verify_signature
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sangsaeng.shared.node_keys import NodeKeyError, from_pem

log = logging.getLogger(__name__)
FLEET_CALL = re.compile(r"[a-z][a-z-]{0,63}")  # register-node, pull-messages, ...
LOOPBACK_ONLY = ("127.0.0.0/8", "::1/128")
ANYWHERE = ("0.0.0.0/0", "::/0")
UPSTREAM_TIMEOUT = 60.0
BODY_TIMEOUT = 120.0  # a whole request body, however slowly it trickles in
MAX_BODY = 512 * 2**20  # a model update of a few hundred MB at most
SMALL_BODY = 2**20  # every call but those that carry models and objects
LARGE_CALLS = {"push-messages", "push-object"}
IN_FLIGHT_BYTES = 1024 * 2**20  # bodies held at once, over all connections
KEYS_TTL = 2.0  # seconds a read of the registered keys is reused
MISS_REFRESH = 1.0  # an unknown key reads them again at most this often
PUBLIC_KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = (
    "flwr-public-key", "flwr-timestamp", "flwr-signature")
REFUSAL_LOG_SECONDS = 60.0  # one warning per kind of refusal and minute
# Flower's Fleet error codes (flwr/supercore/error/base.py, ApiErrorCode): a SuperNode
# refused on connecting (HTTP 412, as the SuperLink answers) exits printing
# "[code: N] detail"; refused later (HTTP 401, as for a failed signature) it shuts itself
# down (flwr/supercore/retry/http_retry.py).
NO_NODE_KEY, NODE_NOT_REGISTERED = 2001, 2004
CONNECTING = {"register-node", "activate-node"}
# Hop-by-hop headers (RFC 9110, 7.6.1) and those httpx/uvicorn set for each hop themselves.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                "trailer", "transfer-encoding", "upgrade", "host", "content-length",
                "content-encoding"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _TooLarge(Exception):
    pass


def create_fleet_proxy(superlink_address: str, registered_keys: Callable[[], set[str]],
                       allow: Iterable[str] = ANYWHERE,
                       superlink_ca: ssl.SSLContext | None = None,
                       max_body: int = MAX_BODY) -> Starlette:
    """A Starlette app forwarding Fleet calls that carry one of `registered_keys()` (node
    public keys, OpenSSH lines), from the `allow`ed networks (CIDRs), to the SuperLink at
    `superlink_address` (over TLS verified with `superlink_ca`, or plain HTTP if None)."""
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
    scheme = "https" if superlink_ca is not None else "http"
    client = httpx.AsyncClient(base_url=f"{scheme}://{superlink_address}",
                               timeout=UPSTREAM_TIMEOUT, verify=superlink_ca or True)
    keys = _Cached(registered_keys, KEYS_TTL)
    budget = _Budget(IN_FLIGHT_BYTES)
    warned: dict[str, float] = {}

    async def forward(request: Request) -> Response:
        if not _allowed(request, networks):
            log.warning("refused a Fleet call from %s: not in --fleet-allow",
                        request.client.host if request.client else "an unknown address")
            return PlainTextResponse("forbidden", 403)
        if not FLEET_CALL.fullmatch(request.path_params["call"]):
            return PlainTextResponse("not found", 404)
        if (refusal := await _identity_refusal(request, keys)) is not None:
            detail = json.loads(bytes(refusal.body))["detail"]
            if time.monotonic() - warned.get(detail, -REFUSAL_LOG_SECONDS) >= REFUSAL_LOG_SECONDS:
                warned[detail] = time.monotonic()
                log.warning("refused a Fleet call (%s): %s (further ones like it this minute "
                            "are not logged)", request.path_params["call"], detail)
            return refusal
        limit = max_body if request.path_params["call"] in LARGE_CALLS else SMALL_BODY
        try:
            async with budget.holding(_declared(request, limit)) as held:
                body = await asyncio.wait_for(_body(request, limit, held), BODY_TIMEOUT)
        except _TooLarge:
            return PlainTextResponse("request too large", 413)
        except _Busy:
            return PlainTextResponse("too many large requests at once; try again", 503)
        except (TimeoutError, ClientDisconnect):
            return PlainTextResponse("request body too slow", 408)
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


async def _identity_refusal(request: Request, keys: _Cached) -> Response | None:
    """None if the call names a registered node key; else Flower's kind of error answer."""
    status = 412 if request.path_params["call"] in CONNECTING else 401
    header = request.headers.get(PUBLIC_KEY_HEADER)
    if header is None:
        return _flower_error(status, NO_NODE_KEY, "this coordinator lets in only registered "
                             "partner nodes: start the SuperNode with its node key "
                             "(`sangsaeng client node` over TLS uses the policy's)")
    try:
        pem = base64.b64decode(header, validate=True)
        key = from_pem(pem)
    except (binascii.Error, NodeKeyError, ValueError):
        return _flower_error(status, NODE_NOT_REGISTERED, "the node's public key is malformed")
    if not await asyncio.to_thread(keys.contains, key):
        return _flower_error(status, NODE_NOT_REGISTERED, "this node key is not registered at "
                             "the coordinator (or its partner was removed): the operator "
                             "adds it with `sangsaeng admin partner add --node-key`")
    if not _signed(request, pem):
        return _flower_error(status, NODE_NOT_REGISTERED, "the request is not signed by "
                             "this node key, or its timestamp is stale (check the clock)")
    return None


def _signed(request: Request, pem: bytes) -> bool:
    """The node key's ECDSA signature of a timestamp within Flower's window (as the
    SuperLink checks it: flwr/superlink/routers/fleet/node_auth.py)."""
    try:
        timestamp = request.headers[TIMESTAMP_HEADER]
        signature = base64.b64decode(request.headers[SIGNATURE_HEADER], validate=True)
        age = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(timestamp)).total_seconds()
        return (-SYSTEM_TIME_TOLERANCE < age < TIMESTAMP_TOLERANCE + SYSTEM_TIME_TOLERANCE
                and verify_signature(bytes_to_public_key(pem), timestamp.encode("ascii"),
                                     signature))
    except (KeyError, ValueError, TypeError, UnicodeError, binascii.Error):
        return False


def _flower_error(status: int, code: int, detail: str) -> Response:
    return Response(json.dumps({"code": code, "detail": detail}), status,
                    media_type="application/json")


def _declared(request: Request, limit: int) -> int:
    """The body's declared size (refused at once over `limit`); 0 if not declared."""
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        raise _TooLarge from None
    if declared > limit:
        raise _TooLarge
    return declared


async def _body(request: Request, limit: int, held: _Held) -> bytes:
    """The body, read as it streams in and refused as soon as it passes `limit` or the
    proxy's budget of bytes in flight."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        held.grow(size)
        chunks.append(chunk)
    return b"".join(chunks)


class _Busy(Exception):
    pass


class _Held:
    def __init__(self, budget: _Budget) -> None:
        self.budget, self.size = budget, 0

    def grow(self, size: int) -> None:
        if size > self.size:
            self.budget.take(size - self.size)
            self.size = size


class _Budget:
    """Bytes of request bodies held in memory at once; beyond, requests get 503 (a
    SuperNode retries those) rather than the coordinator running out of memory."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self, size: int) -> None:
        if self.used + size > self.limit:
            raise _Busy
        self.used += size

    @contextlib.asynccontextmanager
    async def holding(self, declared: int) -> AsyncIterator[_Held]:
        held = _Held(self)
        try:
            held.grow(declared)
            yield held
        finally:
            self.used -= held.size


class _Cached:
    """The registered keys, read again after `ttl` seconds (a partner removed is refused
    within `ttl`), or on a miss at most once a second (a partner just added gets in)."""

    def __init__(self, read: Callable[[], set[str]], ttl: float) -> None:
        self.read, self.ttl = read, ttl
        self.value: set[str] = set()
        self.at = -float("inf")

    def contains(self, key: str) -> bool:
        age = time.monotonic() - self.at
        if age > self.ttl or (key not in self.value and age > MISS_REFRESH):
            self.value, self.at = self.read(), time.monotonic()
        return key in self.value

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
