"""What anyone may send the API before it knows who they are: body sizes, the rate of unauthenticated calls,
and error answers that never echo what was sent.

- Every request body is capped (Starlette's body limit, 413 past it): :attr:`RequestLimits.body_bytes` on
  authenticated routes, a smaller :attr:`~RequestLimits.public_body_bytes` on the routes anyone may call
  (``POST /enroll``, the governance callbacks), :attr:`~RequestLimits.import_bytes` on the site import,
  :attr:`~RequestLimits.upload_bytes` on a release file's upload (``PUT`` under the upload prefixes; the route
  itself holds each file to the size its signed manifest gives).
- A request with a body to a route that needs a token is refused (401) before its body is read when it
  carries no ``Authorization`` header at all.
- The unauthenticated routes take at most :attr:`~RequestLimits.public_rate_per_s` refused requests a second
  from one client address (a token bucket of :attr:`~RequestLimits.public_burst`; 429 with ``Retry-After``
  once it is empty): a client guessing enrollment tokens or sending bad signatures is slowed down, the
  governance platform's signed callbacks and real enrollments never are, however many.
  Behind a reverse proxy on loopback, the client is the ``X-Forwarded-For`` address uvicorn resolves.
- A request that fails validation is answered with where and why (at most 20 errors, each message
  truncated), never with the input itself, so a 25 MB body cannot come back as a 26 MB error. A request
  without the body its route takes is told so in a sentence, and an id that is not one is told the rule for ids.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.identifiers import IDENTIFIER_PATTERN, IDENTIFIER_RULE

_ERRORS_SHOWN: Final = 20
_MESSAGE_CHARS: Final = 300
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REFUSED: Final = frozenset({400, 401, 403, 404, 409, 413, 422})
"""What a caller that guesses or floods gets: each costs it a token of its bucket (a success costs nothing)."""


@dataclass(frozen=True, slots=True)
class RequestLimits:
    body_bytes: int = 1024 * 1024
    public_body_bytes: int = 16 * 1024
    import_bytes: int = 8 * 1024 * 1024
    upload_bytes: int = 512 * 1024 * 1024
    public_rate_per_s: float = 5.0
    public_burst: int = 50
    clients_tracked: int = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RequestGuard:
    """ASGI middleware: body caps by route, the rate limit of the unauthenticated routes, and the early refusal
    of a body sent to an authenticated route without any token (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        public_paths: Iterable[str],
        import_paths: Iterable[str],
        upload_prefixes: Iterable[str] = (),
        limits: RequestLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._public = frozenset(public_paths)
        self._limits = limits
        self._clock = clock
        self._capped = {
            "public": RequestBodyLimitMiddleware(app, limits.public_body_bytes),
            "import": RequestBodyLimitMiddleware(app, limits.import_bytes),
            "upload": RequestBodyLimitMiddleware(app, limits.upload_bytes),
            "other": RequestBodyLimitMiddleware(app, limits.body_bytes),
        }
        self._import = frozenset(import_paths)
        self._upload = tuple(upload_prefixes)
        self._app = app
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        if path in self._public:
            client = _client(scope)
            wait_s = self._wait(client)
            if wait_s > 0:
                retry = str(max(1, math.ceil(wait_s)))
                answer = JSONResponse({"detail": "too many requests"}, 429, headers={"Retry-After": retry})
                await answer(scope, receive, send)
                return

            async def counting(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] in _REFUSED:
                    self._spend(client)  # only a refused call costs: the platform's signed callbacks never do
                await send(message)

            await self._capped["public"](scope, receive, counting)
            return
        if not any(name == b"authorization" for name, _ in scope["headers"]):
            refusal = {"detail": "a bearer token is required"}
            await JSONResponse(refusal, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self._capped[self._cap_of(scope["method"], path)](scope, receive, send)

    def _cap_of(self, method: str, path: str) -> str:
        if path in self._import:
            return "import"
        if method == "PUT" and path.startswith(self._upload):
            return "upload"
        return "other"

    def _bucket(self, client: str) -> _Bucket:
        """``client``'s bucket, refilled up to now (a new one is full)."""
        now, limits = self._clock(), self._limits
        bucket = self._buckets.pop(client, None) or _Bucket(float(limits.public_burst), now)
        bucket.tokens = min(float(limits.public_burst), bucket.tokens + (now - bucket.at) * limits.public_rate_per_s)
        bucket.at = now
        self._buckets[client] = bucket  # most recently seen last
        while len(self._buckets) > limits.clients_tracked:
            self._buckets.popitem(last=False)  # forgetting a client only refills its bucket
        return bucket

    def _wait(self, client: str) -> float:
        """0 if ``client`` may call now, else how long until it may (its refusals used up its bucket)."""
        bucket = self._bucket(client)
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self._limits.public_rate_per_s

    def _spend(self, client: str) -> None:
        bucket = self._bucket(client)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def validation_refused(request: Request, exc: Exception) -> JSONResponse:
    """422 naming where and why a request is invalid, without echoing any of it; a request without the body its
    route takes is told so in a sentence. Always the documented shape (``detail``: a list of ``loc``, ``msg``,
    ``type``), which clients and the OpenAPI schema rely on."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    if [(error.get("type"), tuple(error.get("loc", ()))) for error in errors] == [("missing", ("body",))]:
        route = request.scope.get("route")
        path = route.path if isinstance(route, APIRoute) else request.url.path
        sentence = f"the request body is empty: {request.method} {path} takes {_body_media_type(route)}"
        return JSONResponse({"detail": [{"loc": ["body"], "msg": sentence, "type": "missing"}]}, status_code=422)
    shown: list[dict[str, object]] = [
        {"loc": list(error.get("loc", ()))[:10], "msg": _message(error), "type": str(error.get("type", ""))}
        for error in errors[:_ERRORS_SHOWN]
    ]
    if len(errors) > _ERRORS_SHOWN:
        shown.append({"loc": [], "msg": f"and {len(errors) - _ERRORS_SHOWN} more errors", "type": "truncated"})
    return JSONResponse({"detail": shown}, status_code=422)


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's message, but an id's rule in words rather than as a regular expression."""
    context = error.get("ctx") or {}
    if error.get("type") == "string_pattern_mismatch" and context.get("pattern") == IDENTIFIER_PATTERN:
        return f"not an id: {IDENTIFIER_RULE}"
    return str(error.get("msg", ""))[:_MESSAGE_CHARS]


def _body_media_type(route: object) -> str:
    """The media type of the body ``route`` takes (``text/csv`` for a site list); JSON unless it says otherwise."""
    body = route.dependant.body_params if isinstance(route, APIRoute) else []
    media_type = getattr(body[0].field_info, "media_type", None) if body else None
    return media_type if isinstance(media_type, str) else "application/json"
