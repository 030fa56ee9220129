"""Every HTTP request the platform received, exactly as it arrived, and what it answered.

Kept by an ASGI wrapper outside everything else (faults, authentication, validation), so a request
refused with 401, failed by an injected 500 or left hanging is on record as much as one that opened
a case: tests count what the fleet actually sent, not only what the platform accepted.
"""

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.request_signing import asgi_request_target

Clock = Callable[[], int]

_RESPONSE_BODY_KEPT: Final = 4_096


@dataclass(slots=True)
class ReceivedRequest:
    """One request as received; ``status`` stays ``None`` while it is unanswered (hanging)."""

    number: int
    method: str
    target: str
    """Path and query exactly as sent (percent-encoding kept)."""
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at_ms: int
    status: int | None = None
    response_body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def error(self) -> str | None:
        """The ``error`` slug of a JSON error answer (``unauthorized``, ``bad_signature``, ``injected_fault`` …)."""
        if self.status is None or self.status < 400:
            return None
        try:
            body = json.loads(self.response_body)
        except ValueError:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        return error if isinstance(error, str) else None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


@dataclass
class RequestLog:
    """The requests received, in arrival order; one event loop writes it."""

    entries: list[ReceivedRequest] = field(default_factory=list)
    _changed: asyncio.Event | None = field(default=None, repr=False)

    def add(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes, at_ms: int
    ) -> ReceivedRequest:
        entry = ReceivedRequest(len(self.entries) + 1, method, target, tuple(headers), body, at_ms)
        self.entries.append(entry)
        self.notify()
        return entry

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def matching(self, method: str | None = None, path: str | None = None) -> list[ReceivedRequest]:
        """The requests with this method and/or exact path (query excluded)."""
        return [
            entry
            for entry in self.entries
            if (method is None or entry.method == method) and (path is None or entry.path == path)
        ]

    async def wait_for(self, predicate: Callable[["RequestLog"], bool]) -> None:
        """Return once ``predicate(self)`` holds, re-checking after every request and every answer."""
        while not predicate(self):
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            await self._changed.wait()

    def __len__(self) -> int:
        return len(self.entries)


class RecordRequests:
    """ASGI wrapper: records each HTTP request (body buffered, then replayed to ``app``) and its answer."""

    def __init__(self, app: ASGIApp, log: RequestLog, clock: Clock, skip_prefixes: tuple[str, ...] = ()) -> None:
        self._app = app
        self._log = log
        self._clock = clock
        self._skip = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self._skip):
            await self._app(scope, receive, send)
            return
        body, replay = await buffer_body(receive)
        headers = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]]
        target = asgi_request_target(scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""))
        entry = self._log.add(scope["method"], target, headers, body, self._clock())

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif message["type"] == "http.response.body":
                room = _RESPONSE_BODY_KEPT - len(entry.response_body)
                entry.response_body += message.get("body", b"")[: max(room, 0)]
                if not message.get("more_body", False):
                    self._log.notify()
            await send(message)

        await self._app(scope, replay, capture)


async def buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read a request's whole body; return it and a ``receive`` that hands it to the next app again."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
