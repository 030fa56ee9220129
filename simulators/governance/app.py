"""The reference governance platform's HTTP API: the case endpoints of :mod:`protocol.governance`.

Checks run in the order a real platform applies them: the bearer token (401), then the
``Idempotency-Key`` header (400), then the body against the strict wire model (422), then whether
the key matches the body's alert id (400). Every error answers ``{"error": ..., "detail": ...}``.
The body is validated from the raw JSON bytes, as the contract's strict models require (FastAPI's
own body parsing validates Python objects, which strict models refuse for UUIDs and enums).
"""

import logging
import secrets
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from protocol.governance import CASES_PATH, IDEMPOTENCY_HEADER, CaseReceipt, CaseRequest, CaseStatus
from simulators.governance.recorder import CaseLedger, RecordedCase

logger = logging.getLogger(__name__)

HEALTH_PATH: Final = "/healthz"
_JSON: Final = "application/json"
_MAX_ERRORS_REPORTED: Final = 5


class PlatformError(Exception):
    """A refusal the platform answers with a JSON error body."""

    def __init__(self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


class ErrorBody(BaseModel):
    error: str
    detail: str


class CaseView(BaseModel):
    """A recorded case as ``GET /api/v1/cases`` shows it."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    alert_id: UUID
    status: CaseStatus
    received_at_ms: int
    duplicate_requests: int
    request: CaseRequest

    @classmethod
    def of(cls, case: RecordedCase) -> "CaseView":
        return cls(
            case_id=case.case_id,
            alert_id=case.alert_id,
            status=case.status,
            received_at_ms=case.received_at_ms,
            duplicate_requests=case.duplicate_requests,
            request=case.request,
        )


_CASE_LIST: Final = TypeAdapter(list[CaseView])


def _error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _summarise(error: ValidationError | RequestValidationError) -> str:
    """One line naming the first few fields that failed validation and why."""
    details = error.errors()
    summary = "; ".join(f"{'.'.join(map(str, d['loc'])) or 'body'}: {d['msg']}" for d in details[:_MAX_ERRORS_REPORTED])
    if len(details) > _MAX_ERRORS_REPORTED:
        summary += f" (and {len(details) - _MAX_ERRORS_REPORTED} more)"
    return summary


def _error_slug(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "error"
    return phrase.lower().replace(" ", "_").replace("-", "_")


def _install_error_handlers(app: FastAPI) -> None:
    async def platform_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PlatformError)
        logger.warning("refused %s %s: %s", request.method, request.url.path, exc)
        return _error_response(exc.status, exc.error, exc.detail, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _error_response(exc.status_code, _error_slug(exc.status_code), str(exc.detail), exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request", _summarise(exc))

    app.add_exception_handler(PlatformError, platform_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def create_platform_app(ledger: CaseLedger, token: str) -> FastAPI:
    """The platform's ASGI app, recording cases in ``ledger`` and accepting only ``token``."""
    if not token:
        raise ValueError("the platform needs a non-empty bearer token")
    expected = token.encode()

    async def require_bearer(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise PlatformError(
                HTTPStatus.UNAUTHORIZED,
                "unauthorized",
                "send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="governance"'},
            )
        if not secrets.compare_digest(credentials.encode(), expected):
            raise PlatformError(
                HTTPStatus.UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not valid",
                {"WWW-Authenticate": 'Bearer realm="governance", error="invalid_token"'},
            )

    async def idempotency_key(
        key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
    ) -> UUID:
        if key is None or not key.strip():
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "missing_idempotency_key",
                f"send the alert's id in the {IDEMPOTENCY_HEADER} header",
            )
        try:
            return UUID(key.strip())
        except ValueError:
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "invalid_idempotency_key",
                f"{IDEMPOTENCY_HEADER} must be the alert's id (a UUID), got {key[:64]!r}",
            ) from None

    async def case_request(request: Request) -> CaseRequest:
        try:
            return CaseRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise PlatformError(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_case", _summarise(exc)) from None

    app = FastAPI(
        title="Outpost reference governance platform",
        summary="Stands in for the upstream command platform Outpost's fleet manager raises cases on.",
    )
    _install_error_handlers(app)
    error_responses: dict[int | str, dict[str, object]] = {
        status: {"model": ErrorBody} for status in (400, 401, 404, 422)
    }
    cases = APIRouter(prefix=CASES_PATH, dependencies=[Depends(require_bearer)], responses=error_responses)

    @cases.post(
        "",
        status_code=HTTPStatus.CREATED,
        response_model=CaseReceipt,
        responses={HTTPStatus.OK: {"model": CaseReceipt, "description": "A repeat: the existing case."}},
        openapi_extra={"requestBody": {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}}},
    )
    async def create_case(
        key: Annotated[UUID, Depends(idempotency_key)],
        body: Annotated[CaseRequest, Depends(case_request)],
    ) -> Response:
        """Open a case for an alert; a repeated alert id returns the existing case with ``duplicate``."""
        if key != body.alert_id:
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "idempotency_key_mismatch",
                f"{IDEMPOTENCY_HEADER} {key} is not the body's alert_id {body.alert_id}",
            )
        receipt = ledger.receive(body)
        if receipt.duplicate:
            return Response(receipt.model_dump_json(), status_code=HTTPStatus.OK, media_type=_JSON)
        return Response(
            receipt.model_dump_json(),
            status_code=HTTPStatus.CREATED,
            media_type=_JSON,
            headers={"Location": f"{CASES_PATH}/{receipt.case_id}"},
        )

    @cases.get("", response_model=list[CaseView])
    async def list_cases() -> Response:
        """Every case, in the order it was opened."""
        views = [CaseView.of(case) for case in ledger.cases]
        return Response(_CASE_LIST.dump_json(views), media_type=_JSON)

    @cases.get("/{case_id}", response_model=CaseView)
    async def get_case(case_id: str) -> Response:
        """One case by its id."""
        case = ledger.get(case_id)
        if case is None:
            raise PlatformError(HTTPStatus.NOT_FOUND, "case_not_found", f"no case {case_id[:64]!r}")
        return Response(CaseView.of(case).model_dump_json(), media_type=_JSON)

    @app.get(HEALTH_PATH)
    async def healthz() -> dict[str, object]:
        """Liveness, and how many cases the platform holds."""
        return {"status": "ok", "cases": len(ledger)}

    app.include_router(cases)
    return app
