"""The fleet's outgoing JSON POSTs (to the governance platform, to a deployment's webhook), signed one way.

:func:`signed_post` builds the request first and then signs the target exactly as httpx will send it
(path and query, percent-encoded), with the body and the time of this attempt (:mod:`protocol.request_signing`),
so a retry is signed afresh and never refused as a replay; ``key`` goes as the ``Idempotency-Key`` header,
the same on every attempt. :func:`signed_attempts` builds one POST again for each attempt.
"""

from collections.abc import Callable

import httpx

from protocol.governance import IDEMPOTENCY_HEADER
from protocol.request_signing import signature_headers


def signed_post(http: httpx.AsyncClient, url: str, body: bytes, *, key: str, secret: str, now_ms: int) -> httpx.Request:
    """A JSON POST of ``body`` to ``url`` (relative to ``http``'s base URL, if it has one), signed with ``secret``."""
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key}
    request = http.build_request("POST", url, content=body, headers=headers)
    target = request.url.raw_path.decode("ascii")
    request.headers.update(signature_headers(secret, "POST", target, now_ms, body))
    return request


def signed_attempts(
    http: httpx.AsyncClient, url: str, body: bytes, *, key: str, secret: str, clock: Callable[[], int]
) -> Callable[[], httpx.Request]:
    """Builds the :func:`signed_post` of ``body`` afresh for each attempt, each signed at a later millisecond than
    the one before: an attempt repeated at once (a stale connection) is never refused as a replay of the first."""
    last_ms = -1

    def build() -> httpx.Request:
        nonlocal last_ms
        last_ms = max(clock(), last_ms + 1)
        return signed_post(http, url, body, key=key, secret=secret, now_ms=last_ms)

    return build
