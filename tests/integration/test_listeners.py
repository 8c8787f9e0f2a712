"""The coordinator's listeners close connections that send no request in time, so idle or
trickling connections cannot hold the concurrency limit against partners and startups."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sangsaeng.server.deployment import listeners
from sangsaeng.server.deployment.flower_processes import free_port
from sangsaeng.server.deployment.listeners import Listener, Services


def test_idle_and_trickling_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listeners, "HEADERS_SECONDS", 1.0)

    async def hello(_: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    port = free_port()
    with Services([Listener(Starlette(routes=[Route("/", hello)]), "127.0.0.1", port)]):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        trickling = socket.create_connection(("127.0.0.1", port))
        trickling.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never completed
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/").text == "hello"
            time.sleep(2.0)
            for connection in [*idle, trickling]:
                connection.settimeout(5)
                assert connection.recv(100) == b""  # closed by the server
                connection.close()
            assert client.get("/").text == "hello"  # a kept-alive client is served again
