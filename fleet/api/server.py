"""Runs an ASGI app with uvicorn inside an existing event loop, on a given or free port."""

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process that embeds the server owns signal handling (Ctrl-C stops everything in order).
        yield


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int, name: str) -> None:
        self._name = name
        self._server = _EmbeddedServer(
            uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None
        self.host = host

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets if self._server.servers else []
        if not sockets:
            raise RuntimeError(f"{self._name} HTTP server is not listening")
        port: int = sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name=f"{self._name}-http")
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
