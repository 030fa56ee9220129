"""A TCP proxy in front of a real HTTP server that closes a kept-alive connection just as the next request arrives.

That is the race a rarely used connection loses against a partner's idle timeout (uvicorn's
``timeout_keep_alive``): the partner closes the connection it has kept idle at the moment the client writes a
new request on it, and the client reads nothing back. Racing a real timer is not deterministic; this proxy makes
the partner's close land exactly then, on demand (:meth:`IdleClosingProxy.close_when_reused`).
"""

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

_CHUNK: Final = 65_536


class Close(StrEnum):
    FIN = "fin"  # an orderly close: the client reads end of stream (httpx RemoteProtocolError)
    RESET = "reset"  # SO_LINGER 0: the client's read fails with ECONNRESET (httpx ReadError)


class IdleClosingProxy:
    """Forwards each connection to ``upstream``; counts connections, and requests it closed instead of forwarding."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"the upstream needs a host and port: {upstream}")
        self._upstream = (parts.hostname, parts.port)
        self._close: Close | None = None
        self._close_every_request = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        """Connections clients opened through the proxy."""
        self.closed_on_request = 0
        """Requests the proxy answered by closing the connection."""
        self.url = ""

    def close_when_reused(self, how: Close = Close.FIN) -> None:
        """Close the next connection on which a second request arrives, as that request arrives."""
        self._close = how

    def close_every_request(self) -> None:
        """Close every connection as its first request arrives (a partner failing outright, not a stale connection)."""
        self._close_every_request = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        answered = asyncio.Event()
        backward = asyncio.create_task(self._pump(upstream_reader, client_writer, answered))
        try:
            while data := await client_reader.read(_CHUNK):
                if self._close_every_request or (answered.is_set() and self._close is not None):
                    self._drop(client_writer)
                    return
                upstream_writer.write(data)
                await upstream_writer.drain()
        except ConnectionError:
            pass
        finally:
            backward.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await backward
            upstream_writer.close()
            client_writer.close()
            self._tasks.discard(task)

    def _drop(self, client_writer: asyncio.StreamWriter) -> None:
        how, self._close = self._close, None
        self.closed_on_request += 1
        if how is Close.RESET:
            sock = client_writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client_writer.transport.abort()
        else:
            client_writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: asyncio.Event) -> None:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
            answered.set()


@asynccontextmanager
async def idle_closing_proxy(upstream: str) -> AsyncIterator[IdleClosingProxy]:
    proxy = IdleClosingProxy(upstream)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
