"""The Grafana imitation as one handle, started in-process on a loopback port.

``async with GrafanaImitation(token="...") as grafana`` serves :mod:`simulators.grafana.app` on a
free port (``url``), holds what it was sent in ``state`` (folders, dashboards and every saved
version in ``state.history``) and records every request as received in ``requests``. Clients that
block (grafana-client) must run in a thread (``asyncio.to_thread``): the server runs in this loop.
"""

from collections.abc import Sequence
from types import TracebackType
from typing import Self

from fleet.api.server import HttpServer
from simulators.governance.request_log import RequestLog
from simulators.grafana.app import create_grafana_app
from simulators.grafana.state import Clock, GrafanaState, utc_now


class GrafanaImitation:
    """Owns the state, the request log and the HTTP server.

    ``token`` may do everything the push needs (an Editor's service-account token);
    ``viewer_tokens`` are known but may only read (writes answer 403), as a Viewer's would.
    """

    def __init__(
        self,
        *,
        token: str,
        viewer_tokens: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = utc_now,
    ) -> None:
        self.token = token
        self.state = GrafanaState(clock=clock)
        self.requests = RequestLog()
        self.app = create_grafana_app(
            self.state, editor_tokens=[token], viewer_tokens=viewer_tokens, request_log=self.requests
        )
        self.server = HttpServer(self.app, host, port, "grafana-imitation")

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
