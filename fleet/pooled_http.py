"""Outgoing HTTP on pooled keep-alive connections, without a partner's idle timeout costing a retry delay.

A partner (uvicorn: ``timeout_keep_alive``, 5 s by default) closes a connection it kept idle; a request written
on it just as it closes gets no answer (httpx ``RemoteProtocolError`` or ``ReadError('')``). Two defences:

- :func:`pool_limits`: the client lets go of an idle connection sooner than the partner would
  (``keepalive_expiry_s``, under the partner's idle timeout);
- :func:`send_once_more_if_stale`: a request that failed that way on a *reused* connection is sent again at
  once, on another. Only requests safe to repeat go through it (each carries an ``Idempotency-Key``), and a
  request that failed on a connection opened for it is not repeated: that is the partner failing, for the
  caller's backoff to handle.
"""

import logging
from collections.abc import Callable
from typing import Any, Final

import httpx

logger = logging.getLogger(__name__)

STALE_CONNECTION_ERRORS: Final = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""What a request written on a connection the partner closed meets: no answer, a reset, a broken pipe."""
_MAX_CONNECTIONS: Final = 100
_MAX_KEEPALIVE_CONNECTIONS: Final = 20


def pool_limits(keepalive_expiry_s: float) -> httpx.Limits:
    """httpx's default pool sizes, with idle connections closed after ``keepalive_expiry_s``."""
    return httpx.Limits(
        max_connections=_MAX_CONNECTIONS,
        max_keepalive_connections=_MAX_KEEPALIVE_CONNECTIONS,
        keepalive_expiry=keepalive_expiry_s,
    )


class _ConnectionTrace:
    """httpcore's ``trace`` extension for one request: whether it went out on a connection opened for it."""

    def __init__(self) -> None:
        self.connected = False
        self.written = False

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.startswith("connection.connect_"):
            self.connected = True
        elif event.startswith(("http11.send_request_headers", "http2.send_request_headers")):
            self.written = True

    @property
    def reused(self) -> bool:
        """The request was written on a pooled connection that served an earlier one."""
        return self.written and not self.connected


async def send_once_more_if_stale(
    http: httpx.AsyncClient, build: Callable[[], httpx.Request], partner: str
) -> httpx.Response:
    """Send the request ``build`` makes; if it failed on a reused connection before an answer came (the partner
    closed it while idle), send a new one from ``build`` at once. Raises what httpx raises otherwise."""
    request = build()
    trace = _ConnectionTrace()
    request.extensions["trace"] = trace
    try:
        return await http.send(request)
    except STALE_CONNECTION_ERRORS as exc:
        if not trace.reused:
            raise
        logger.info("%s closed a pooled connection under a request (%r): sent again at once", partner, exc)
    return await http.send(build())
