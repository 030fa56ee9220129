"""The reference governance platform as one handle: started in-process on a loopback port.

``async with GovernancePlatform(token=..., signing_secrets=[...], case_loop=CaseLoopSettings(...))``
serves the case API on a free port (``url``), records every request (``requests``), works each case
through the loop and calls the fleet back at ``callback_url`` (settable once the fleet listens:
:meth:`set_callback_url`), and takes faults from ``faults`` or from its ``/_sim`` admin endpoints.
"""

from collections.abc import Sequence
from types import TracebackType
from typing import Self

import httpx

from fleet.api.server import HttpServer
from protocol.clock import utc_now_ms
from protocol.governance import CASE_CALLBACK_PATH
from protocol.reconnect import Backoff
from protocol.request_signing import DEFAULT_REPLAY_WINDOW_S
from simulators.governance.app import create_platform_app
from simulators.governance.callbacks import CallbackLog, CallbackSender
from simulators.governance.case_loop import CaseLoop, CaseLoopSettings
from simulators.governance.faults import Faults
from simulators.governance.recorder import CaseLedger, Clock
from simulators.governance.request_log import RequestLog


def callback_url_for(fleet_url: str) -> str:
    """The fleet's callback URL given its API's base URL."""
    return str(httpx.URL(fleet_url.rstrip("/") + CASE_CALLBACK_PATH))


class GovernancePlatform:
    """Owns the ledger, the request log, the faults, the case loop and the HTTP server."""

    def __init__(
        self,
        *,
        token: str,
        signing_secrets: Sequence[str] = (),
        case_loop: CaseLoopSettings | None = None,
        callback_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
        clock: Clock = utc_now_ms,
        callback_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.token = token
        self.signing_secrets = tuple(signing_secrets)
        self.ledger = CaseLedger(clock)
        self.requests = RequestLog()
        self.faults = Faults()
        self.callbacks = CallbackLog()
        self.loop: CaseLoop | None = None
        if case_loop is not None:
            sender = CallbackSender(
                self.callbacks,
                secret=self.signing_secrets[0] if self.signing_secrets else None,
                url=callback_url,
                timeout_s=case_loop.callback_timeout_s,
                backoff=lambda: Backoff(base_s=case_loop.retry_base_s, cap_s=case_loop.retry_cap_s),
                max_attempts=case_loop.max_attempts,
                clock=clock,
                transport=callback_transport,
            )
            self.loop = CaseLoop(self.ledger, sender, self.faults, case_loop)
        elif callback_url is not None:
            raise ValueError("a callback URL needs the case loop (case_loop=CaseLoopSettings())")
        self.app = create_platform_app(
            self.ledger,
            token,
            signing_secrets=self.signing_secrets,
            replay_window_s=replay_window_s,
            request_log=self.requests,
            faults=self.faults,
            case_loop=self.loop,
            callback_log=self.callbacks,
            clock=clock,
        )
        self.server = HttpServer(self.app, host, port, "governance")

    @property
    def url(self) -> str:
        return self.server.url

    def set_callback_url(self, url: str) -> None:
        """Send the case loop's callbacks to ``url`` (the full URL; see :func:`callback_url_for`)."""
        if self.loop is None:
            raise RuntimeError("this platform runs no case loop, so it sends no callbacks")
        self.loop.sender.set_url(url)

    async def settled(self) -> None:
        """Return once every case's loop has finished sending its callbacks."""
        if self.loop is not None:
            await self.loop.settled()

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        """Stop the case loop (pending callbacks are abandoned), answer hanging requests, stop serving."""
        if self.loop is not None:
            await self.loop.stop()
            await self.loop.sender.close()
        self.faults.clear()
        await self.server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
