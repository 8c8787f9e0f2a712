"""The coordinator's HTTP services (the API and the Fleet proxy) on uvicorn, in one
background thread, so `sangsaeng server`, the demo and the tests run them the same way."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from .certificates import TlsFiles

READY_TIMEOUT = 30.0
LIMIT_CONCURRENCY = 1000  # connections and tasks at once; beyond, 503 (not memory or fds)
HEADERS_SECONDS = 10.0  # from connecting (or a response) to a request's complete headers


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that has not sent a request's
    complete headers within HEADERS_SECONDS of opening (after the TLS handshake) or of its
    last response: idle or trickling connections cannot hold the concurrency limit."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        served = self.cycle  # a new request replaces it once its headers are in
        self._deadline = self.loop.call_later(HEADERS_SECONDS, self._expire, served)

    def _expire(self, served: object) -> None:
        if self.cycle is served and not self.transport.is_closing():
            self.transport.close()


@dataclass(frozen=True)
class Listener:
    app: ASGIApp
    host: str
    port: int
    tls: TlsFiles | None = None  # plain HTTP only where tests need a loopback listener

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


class Services:
    """Context manager: every listener served until exit (uvicorn's graceful shutdown)."""

    def __init__(self, listeners: list[Listener]) -> None:
        # proxy_headers off: X-Forwarded-For and the like are set by clients, never trusted.
        self._servers = [uvicorn.Server(uvicorn.Config(
            item.app, host=item.host, port=item.port, log_level="warning", access_log=False,
            ws="none", timeout_graceful_shutdown=5, proxy_headers=False, server_header=False,
            timeout_keep_alive=15, limit_concurrency=LIMIT_CONCURRENCY, http=_Protocol,
            ssl_certfile=item.tls.certfile if item.tls else None,
            ssl_keyfile=item.tls.keyfile if item.tls else None,
        )) for item in listeners]
        self._thread = threading.Thread(target=self._run, name="sangsaeng-http", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def serve_all() -> None:
            await asyncio.gather(*(server.serve() for server in self._servers))
        try:
            asyncio.run(serve_all())
        except BaseException as err:  # a port in use, say: reported by __enter__
            self.error = err

    def __enter__(self) -> Services:
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(s.started for s in self._servers):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the HTTP services did not start: {self.error!r}")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        self._thread.join(timeout=15)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
