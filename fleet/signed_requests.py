"""The fleet's outgoing JSON POSTs (to the governance platform, to a deployment's webhook), signed one way.

:func:`signed_post` builds the request first and then signs the target exactly as httpx will send it
(path and query, percent-encoded), with the body and the time of this attempt (:mod:`protocol.request_signing`),
so a retry is signed afresh and never refused as a replay; ``key`` goes as the ``Idempotency-Key`` header,
the same on every attempt.
"""

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
