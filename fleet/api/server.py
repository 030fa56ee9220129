"""Runs an ASGI app with uvicorn inside an existing event loop, on a given or free port, over HTTP or HTTPS."""

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import uvicorn
from fastapi import FastAPI

from fleet.errors import HttpBindError

logger = logging.getLogger(__name__)

TRUSTED_PROXIES: Final = ("127.0.0.1", "::1")
"""The only peers whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed: a TLS proxy on the same
machine (docs/SECURITY.md). Fixed here, as uvicorn's own default takes ``FORWARDED_ALLOW_IPS`` from the
environment, where ``*`` would let any client choose the address it is rate-limited as."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process that embeds the server owns signal handling (Ctrl-C stops everything in order).
        yield


class HttpServer:
    """Serves ``app``; with ``tls_cert_file`` and ``tls_key_file`` (PEM) over HTTPS only."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        name: str,
        *,
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
    ) -> None:
        if (tls_cert_file is None) != (tls_key_file is None):
            raise ValueError("HTTPS needs both a certificate and its key")
        self._name = name
        self._tls = tls_cert_file is not None
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=True,
            forwarded_allow_ips=list(TRUSTED_PROXIES),
            ssl_certfile=tls_cert_file,
            ssl_keyfile=tls_key_file,
        )
        if self._tls:  # loaded here, so a wrong file is a clear error at start, not inside uvicorn's task
            try:
                config.load()
            except (OSError, ssl.SSLError) as exc:
                raise HttpBindError(
                    f"{name} HTTPS cannot load certificate {tls_cert_file} with key {tls_key_file}: {exc}"
                ) from exc
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.host = host
        self._requested_port = port

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError(f"{self._name} HTTP server is not listening")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        # Bind here rather than in uvicorn, which answers a taken port with sys.exit().
        try:
            self._socket = socket.create_server((self.host, self._requested_port), reuse_port=False)
        except OSError as exc:
            raise HttpBindError(
                f"{self._name} HTTP API cannot listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        # Connections accepted from it inherit this: uvicorn writes a response's head and body separately,
        # and Nagle's algorithm against the client's delayed ACK would hold every answer ~40 ms.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]), name=f"{self._name}-http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"{self._name} HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        logger.info("%s HTTP API on %s", self._name, self.url)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
        if self._socket is not None:
            self._socket.close()
