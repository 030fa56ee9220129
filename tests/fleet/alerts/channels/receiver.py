"""A deployment's webhook receiver over real HTTP on a free loopback port: it verifies every request's
signature with :class:`~protocol.request_signing.RequestVerifier` (a replay is refused), records what it
was sent, and answers as the test scripts it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request, Response

from fleet.api.server import HttpServer
from protocol.clock import utc_now_ms
from protocol.errors import RequestSignatureError
from protocol.governance import IDEMPOTENCY_HEADER
from protocol.notifications import AlertNotification
from protocol.request_signing import RequestVerifier, asgi_request_target

HOOK_PATH: Final = "/hooks/outpost"
RECEIVER_SECRET: Final = "village-webhook-secret"


@dataclass(frozen=True, slots=True)
class Received:
    """One request the receiver took (its signature verified) and what it answered."""

    idempotency_key: str | None
    signature: str
    notification: AlertNotification
    status: int


@dataclass
class WebhookReceiver:
    answers: list[int] = field(default_factory=list)
    """Status codes for the next requests, in turn; 204 once they are used up."""
    held: asyncio.Event | None = None
    """While set to an unset event, requests wait for it (a receiver too slow to answer)."""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Why requests with a bad signature were refused (answered 401)."""
    url: str = ""

    @property
    def accepted(self) -> list[AlertNotification]:
        """What the receiver took (answered 2xx), in arrival order."""
        return [r.notification for r in self.received if 200 <= r.status < 300]

    def app(self, secret: str) -> FastAPI:
        verifier = RequestVerifier([secret])
        app = FastAPI()

        @app.post(HOOK_PATH)
        async def take(request: Request) -> Response:
            body = await request.body()
            target = asgi_request_target(request.scope["raw_path"], request.scope["query_string"])
            try:
                verified = verifier.verify(request.headers, "POST", target, body, utc_now_ms())
            except RequestSignatureError as exc:
                self.refused.append(exc.reason)
                return Response(status_code=401, content=exc.reason)
            if self.held is not None:
                await self.held.wait()
            status = self.answers.pop(0) if self.answers else 204
            notification = AlertNotification.model_validate_json(body)
            idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
            self.received.append(Received(idempotency_key, verified.signature, notification, status))
            return Response(status_code=status, content=b"" if status == 204 else f"answered {status}")

        return app


@asynccontextmanager
async def webhook_receiver(
    secret: str = RECEIVER_SECRET, *, tls_cert_file: Path | None = None, tls_key_file: Path | None = None
) -> AsyncIterator[WebhookReceiver]:
    """A receiver listening on 127.0.0.1 (HTTPS with the certificate given); ``url`` is its hook's URL."""
    receiver = WebhookReceiver()
    server = HttpServer(
        receiver.app(secret), "127.0.0.1", 0, "webhook", tls_cert_file=tls_cert_file, tls_key_file=tls_key_file
    )
    await server.start()
    receiver.url = f"{server.url}{HOOK_PATH}"
    try:
        yield receiver
    finally:
        if receiver.held is not None:
            receiver.held.set()  # let a held request finish, so the server can stop
        await server.stop()
