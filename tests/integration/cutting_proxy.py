"""A TCP proxy that drops connections mid-download, as a flaky 4G link does.

Each of the first ``cuts`` connections is reset (SO_LINGER 0) once ``cut_after`` bytes have gone from the server
to the client; later connections pass untouched. It works below TLS, so it counts the bytes the server sent in
all (:attr:`CuttingProxy.downstream_bytes`): a client that resumes fetches little more than the file once, one
that starts over fetches it again on every cut.
"""

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import urlsplit

_CHUNK: Final = 16_384


class CuttingProxy:
    def __init__(self, upstream: str, *, cuts: int, cut_after: int) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._scheme = parts.scheme
        self.cuts_left = cuts
        self.cut_after = cut_after
        self.connections = 0
        self.downstream_bytes = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{self._scheme}://127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.cuts_left > 0
        self.cuts_left -= 1 if cut else 0
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        up = asyncio.create_task(_pump(client_reader, upstream_writer))
        try:
            sent = 0
            while chunk := await upstream_reader.read(_CHUNK):
                if cut and sent + len(chunk) > self.cut_after:
                    chunk = chunk[: self.cut_after - sent]
                client_writer.write(chunk)
                await client_writer.drain()
                sent += len(chunk)
                self.downstream_bytes += len(chunk)
                if cut and sent >= self.cut_after:
                    _reset(client_writer)
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await up
            for writer in (client_writer, upstream_writer):
                writer.close()
            self._tasks.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST: the client's read fails at once, as when a link drops."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@asynccontextmanager
async def cutting_proxy(upstream: str, *, cuts: int, cut_after: int) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(upstream, cuts=cuts, cut_after=cut_after)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
