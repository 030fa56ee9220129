"""The Grafana imitation's HTTP API: the part of Grafana's ``/api`` that publishing dashboards uses.

Every route but ``GET /api/health`` needs ``Authorization: Bearer <token>``, answered as Grafana 11
answers: no credentials 401 ``auth.unauthorized``, an unknown token 401 ``api-key.invalid``, a
viewer's token 403 "Access denied" on writes. Errors carry Grafana's JSON ``message`` (and
``status`` where Grafana sets one); bodies are parsed from the raw bytes, so malformed JSON is 400
"bad request data" as Grafana's binder says, never FastAPI's 422.
"""

import json
import logging
import secrets
from collections.abc import Iterable
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from protocol.clock import utc_now_ms
from simulators.governance.request_log import RecordRequests, RequestLog
from simulators.grafana.state import GrafanaRefusal, GrafanaState

logger = logging.getLogger(__name__)

GRAFANA_VERSION: Final = "11.6.0"
_DEFAULT_FOLDER_LIMIT: Final = 1000


def _unauthorized(message: str, message_id: str) -> GrafanaRefusal:
    return GrafanaRefusal(HTTPStatus.UNAUTHORIZED, message, messageId=message_id, statusCode=401, traceID="")


class _Tokens:
    """Which bearer tokens Grafana knows, and which of them may only read (a Viewer's service account)."""

    def __init__(self, editor_tokens: Iterable[str], viewer_tokens: Iterable[str]) -> None:
        self._editors = [token.encode() for token in editor_tokens]
        self._viewers = [token.encode() for token in viewer_tokens]
        if not self._editors:
            raise ValueError("the Grafana imitation needs at least one editor token")

    def _known(self, presented: bytes, tokens: list[bytes]) -> bool:
        # compare with every token, so the time taken says nothing about which one nearly matched
        return any([secrets.compare_digest(presented, token) for token in tokens])

    async def may_read(self, authorization: Annotated[str | None, Header()] = None) -> None:
        self._role(authorization)

    async def may_write(self, request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        if self._role(authorization) == "viewer":
            action = "dashboards:write" if request.url.path.startswith("/api/dashboards") else "folders:write"
            raise GrafanaRefusal(
                HTTPStatus.FORBIDDEN,
                f"You'll need additional permissions to perform this action. Permissions needed: {action}",
                accessErrorId="ACE0000000001",
                title="Access denied",
            )

    def _role(self, authorization: str | None) -> str:
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise _unauthorized("Unauthorized", "auth.unauthorized")
        presented = credentials.encode()
        if self._known(presented, self._editors):
            return "editor"
        if self._known(presented, self._viewers):
            return "viewer"
        raise _unauthorized("Invalid API key", "api-key.invalid")


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "bad request data") from exc


def create_grafana_app(
    state: GrafanaState,
    *,
    editor_tokens: Iterable[str],
    viewer_tokens: Iterable[str] = (),
    request_log: RequestLog | None = None,
) -> FastAPI:
    """The imitation's ASGI app over ``state``; with ``request_log``, every request is recorded as received."""
    tokens = _Tokens(editor_tokens, viewer_tokens)
    app = FastAPI(title="Grafana HTTP API imitation", docs_url=None, redoc_url=None, openapi_url=None)
    if request_log is not None:
        app.add_middleware(RecordRequests, log=request_log, clock=utc_now_ms)

    async def refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GrafanaRefusal)
        logger.info("refused %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(exc.body, status_code=exc.http_status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = "Not found" if exc.status_code == HTTPStatus.NOT_FOUND else str(exc.detail)
        return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(GrafanaRefusal, refusal)
    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        """Unauthenticated, as Grafana's is."""
        return {"commit": "outpost-imitation", "database": "ok", "version": GRAFANA_VERSION}

    reads = APIRouter(prefix="/api", dependencies=[Depends(tokens.may_read)])
    writes = APIRouter(prefix="/api", dependencies=[Depends(tokens.may_write)])

    @reads.get("/search")
    async def search(
        request: Request,
        type_: Annotated[str | None, Query(alias="type")] = None,
        query: str = "",
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        if type_ not in (None, "dash-folder", "dash-db"):
            raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, f"invalid type: {type_}")
        return state.search(
            kind=type_,
            query=query,
            folder_uids=request.query_params.getlist("folderUIDs"),
            dashboard_uids=request.query_params.getlist("dashboardUIDs"),
            limit=limit,
        )

    @reads.get("/folders")
    async def folder_list(
        parent_uid: Annotated[str | None, Query(alias="parentUid")] = None,
        limit: int = _DEFAULT_FOLDER_LIMIT,
        page: int = 1,
    ) -> list[dict[str, Any]]:
        return state.folder_list(parent_uid or None, max(limit, 1), max(page, 1))

    @reads.get("/folders/{uid}")
    async def folder(uid: str) -> dict[str, Any]:
        return state.folder(uid).as_json()

    @writes.post("/folders")
    async def create_folder(request: Request) -> dict[str, Any]:
        return state.create_folder(await _json_body(request)).as_json()

    @writes.put("/folders/{uid}")
    async def update_folder(uid: str, request: Request) -> dict[str, Any]:
        return state.update_folder(uid, await _json_body(request)).as_json()

    @reads.get("/dashboards/uid/{uid}")
    async def dashboard(uid: str) -> dict[str, Any]:
        return state.dashboard_json(uid)

    @writes.post("/dashboards/db")
    async def save_dashboard(request: Request) -> dict[str, Any]:
        return state.save_answer(state.save_dashboard(await _json_body(request)))

    app.include_router(reads)
    app.include_router(writes)
    return app
