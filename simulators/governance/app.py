"""The reference governance platform's HTTP API: the case endpoints of :mod:`protocol.governance`.

Checks run in the order a real platform applies them: the bearer token (401), then, when the
platform holds signing secrets, the request's HMAC signature (401 naming the reason: unsigned, bad
signature, timestamp outside the replay window, replayed), then the ``Idempotency-Key`` header (400),
then the body against the strict wire model (422), then whether the key matches the body (400).
Every error answers ``{"error": ..., "detail": ...}``. The body is validated from the raw JSON
bytes, as the contract's strict models require (FastAPI's own body parsing validates Python objects,
which strict models refuse for UUIDs and enums).

Optional parts make it a faithful partner (:class:`simulators.governance.platform.GovernancePlatform`
wires them all): a :class:`~simulators.governance.request_log.RequestLog` recording every request as
received, :class:`~simulators.governance.faults.Faults` injected into the API, and a
:class:`~simulators.governance.case_loop.CaseLoop` that works each new case and calls the fleet back.
"""

import logging
import secrets
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from protocol.clock import utc_now_ms
from protocol.errors import RequestSignatureError
from protocol.governance import (
    CASES_PATH,
    IDEMPOTENCY_HEADER,
    CaseCallback,
    CaseReceipt,
    CaseRequest,
    CaseStatus,
    CaseUpdate,
    CaseUpdateReceipt,
)
from protocol.request_signing import DEFAULT_REPLAY_WINDOW_S, RequestVerifier, asgi_request_target
from simulators.governance.admin import ADMIN_PREFIX, admin_router
from simulators.governance.callbacks import CallbackLog
from simulators.governance.case_loop import CaseLoop
from simulators.governance.faults import Faults, InjectFaults
from simulators.governance.recorder import (
    CaseLedger,
    CaseUpdateMismatchError,
    Clock,
    RecordedCase,
    UnknownCaseError,
)
from simulators.governance.request_log import RecordRequests, RequestLog

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
    events: list[CaseCallback] = []
    updates: list[CaseUpdate] = []

    @classmethod
    def of(cls, case: RecordedCase) -> "CaseView":
        return cls(
            case_id=case.case_id,
            alert_id=case.alert_id,
            status=case.status,
            received_at_ms=case.received_at_ms,
            duplicate_requests=case.duplicate_requests,
            request=case.request,
            events=list(case.events),
            updates=list(case.updates),
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


class _Checks:
    """The FastAPI dependencies that guard the case API, in the order they run."""

    def __init__(self, token: str, verifier: RequestVerifier | None, clock: Clock) -> None:
        self._expected = token.encode()
        self._verifier = verifier
        self._clock = clock

    async def require_bearer(self, authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise PlatformError(
                HTTPStatus.UNAUTHORIZED,
                "unauthorized",
                "send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="governance"'},
            )
        if not secrets.compare_digest(credentials.encode(), self._expected):
            raise PlatformError(
                HTTPStatus.UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not valid",
                {"WWW-Authenticate": 'Bearer realm="governance", error="invalid_token"'},
            )

    async def require_signature(self, request: Request) -> None:
        if self._verifier is None:
            return
        scope = request.scope
        target = asgi_request_target(scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""))
        try:
            self._verifier.verify(request.headers, request.method, target, await request.body(), self._clock())
        except RequestSignatureError as exc:
            raise PlatformError(
                HTTPStatus.UNAUTHORIZED, exc.reason, str(exc), {"WWW-Authenticate": 'Outpost-HMAC realm="governance"'}
            ) from None

    @staticmethod
    async def idempotency_key(key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None) -> UUID:
        if key is None or not key.strip():
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "missing_idempotency_key",
                f"send the alert's (or update's) id in the {IDEMPOTENCY_HEADER} header",
            )
        try:
            return UUID(key.strip())
        except ValueError:
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "invalid_idempotency_key",
                f"{IDEMPOTENCY_HEADER} must be the alert's id (a UUID), got {key[:64]!r}",
            ) from None

    @staticmethod
    async def case_request(request: Request) -> CaseRequest:
        try:
            return CaseRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise PlatformError(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_case", _summarise(exc)) from None

    @staticmethod
    async def case_update(request: Request) -> CaseUpdate:
        try:
            return CaseUpdate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise PlatformError(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_update", _summarise(exc)) from None


def create_platform_app(
    ledger: CaseLedger,
    token: str,
    *,
    signing_secrets: Sequence[str] = (),
    replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
    request_log: RequestLog | None = None,
    faults: Faults | None = None,
    case_loop: CaseLoop | None = None,
    callback_log: CallbackLog | None = None,
    clock: Clock = utc_now_ms,
) -> FastAPI:
    """The platform's ASGI app, recording cases in ``ledger`` and accepting only ``token``.

    With ``signing_secrets`` every POST must be signed with one of them (the first also signs the
    callbacks the case loop sends). ``clock`` is the signature check's notion of now.
    """
    if not token:
        raise ValueError("the platform needs a non-empty bearer token")
    verifier = RequestVerifier(signing_secrets, replay_window_s=replay_window_s) if signing_secrets else None
    checks = _Checks(token, verifier, clock)
    app = FastAPI(
        title="Outpost reference governance platform",
        summary="Stands in for the upstream command platform Outpost's fleet manager raises cases on.",
    )
    _install_error_handlers(app)

    @app.get(HEALTH_PATH)
    async def healthz() -> dict[str, object]:
        """Liveness, and how many cases the platform holds."""
        return {"status": "ok", "cases": len(ledger)}

    app.include_router(_case_router(ledger, checks, case_loop))
    if faults is not None or request_log is not None or case_loop is not None:
        app.include_router(
            admin_router(
                checks.require_bearer,
                faults=faults,
                request_log=request_log,
                case_loop=case_loop,
                callbacks=callback_log,
            )
        )
    # Added innermost first: the request log sees every request exactly as it arrived, faults included.
    if faults is not None:
        app.add_middleware(InjectFaults, faults=faults)
    if request_log is not None:
        app.add_middleware(RecordRequests, log=request_log, clock=clock, skip_prefixes=(ADMIN_PREFIX, HEALTH_PATH))
    return app


def _case_router(ledger: CaseLedger, checks: _Checks, case_loop: CaseLoop | None) -> APIRouter:
    error_responses: dict[int | str, dict[str, object]] = {
        status: {"model": ErrorBody} for status in (400, 401, 404, 409, 422)
    }
    cases = APIRouter(prefix=CASES_PATH, dependencies=[Depends(checks.require_bearer)], responses=error_responses)
    signed = [Depends(checks.require_signature)]
    idempotency_key = checks.idempotency_key
    case_request = checks.case_request
    case_update = checks.case_update

    @cases.post(
        "",
        dependencies=signed,
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
        case, new = ledger.open(body)
        receipt = case.receipt(duplicate=not new)
        if new and case_loop is not None:
            case_loop.opened(case)
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

    @cases.post(
        "/{case_id}/updates",
        dependencies=signed,
        response_model=CaseUpdateReceipt,
        openapi_extra={"requestBody": {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}}},
    )
    async def update_case(
        case_id: str,
        key: Annotated[UUID, Depends(idempotency_key)],
        body: Annotated[CaseUpdate, Depends(case_update)],
    ) -> Response:
        """Withdraw a case (its alert was cancelled or cleared); a repeated update id answers ``duplicate``."""
        if body.case_id != case_id:
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "case_id_mismatch",
                f"the path names {case_id[:64]!r}, the body {body.case_id!r}",
            )
        if key != body.update_id:
            raise PlatformError(
                HTTPStatus.BAD_REQUEST,
                "idempotency_key_mismatch",
                f"{IDEMPOTENCY_HEADER} {key} is not the body's update_id {body.update_id}",
            )
        try:
            receipt, closed = ledger.update(body)
        except UnknownCaseError as exc:
            raise PlatformError(HTTPStatus.NOT_FOUND, "case_not_found", str(exc)) from None
        except CaseUpdateMismatchError as exc:
            raise PlatformError(HTTPStatus.CONFLICT, "update_mismatch", str(exc)) from None
        if closed is not None and case_loop is not None:
            case_loop.withdrawn(closed)
        return Response(receipt.model_dump_json(), media_type=_JSON)

    return cases
