"""Opens and withdraws cases on the governance platform over HTTPS (contract: :mod:`protocol.governance`).

Every request is signed (:func:`fleet.signed_requests.signed_post`: HMAC-SHA256 over the timestamp, the target as
sent and the body, with the first of ``governance.signing_secrets``), afresh on every attempt, so a retry
is never refused as a replay.

Connections are pooled and let go after ``governance.keepalive_expiry_s`` idle, sooner than the platform closes
them; a request that still meets a connection the platform closed while idle is sent again at once on a new one
(:mod:`fleet.pooled_http`), so a rare press does not wait for the outbox's retry: a case is idempotent by its
alert id, a withdrawal by its update id.

httpx errors are translated here: network failures, timeouts, 5xx, 408 and 429 become
:class:`~fleet.errors.GovernanceUnavailableError` (retry); 401, 403 and 404 mean the fleet's URL or
token is wrong (:class:`~fleet.errors.GovernanceSettingsError`: keep the case, fix the settings), except
a 404 that names the case as unknown; any other refusal is about the message itself
(:class:`~fleet.errors.GovernanceRejectedError`).
"""

from collections.abc import Callable
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from fleet.errors import GovernanceRejectedError, GovernanceSettingsError, GovernanceUnavailableError
from fleet.pooled_http import pool_limits, send_once_more_if_stale
from fleet.settings import GovernanceSettings
from fleet.signed_requests import signed_attempts
from protocol.clock import utc_now_ms
from protocol.governance import (
    CASES_PATH,
    CaseReceipt,
    CaseRequest,
    CaseUpdate,
    CaseUpdateReceipt,
    case_updates_path,
)

_Receipt = TypeVar("_Receipt", bound=BaseModel)
_UNKNOWN_CASE: Final = "case_not_found"
_TRY_AGAIN: Final = frozenset({408, 429})
"""Refusals of the moment (a proxy's request timeout, rate limiting), retried like a 5xx."""


class GovernanceClient:
    def __init__(
        self,
        settings: GovernanceSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        clock: Callable[[], int] = utc_now_ms,
    ) -> None:
        if settings.url is None:
            raise ValueError("GovernanceClient needs governance.url")
        self._signing_secret = settings.signing_secrets[0].get_secret_value()
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=str(settings.url).rstrip("/"),
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout_s,
            verify=settings.verify_tls,
            transport=transport,
            limits=pool_limits(settings.keepalive_expiry_s),
        )

    async def open_case(self, case: CaseRequest) -> CaseReceipt:
        """Open the alert's case; the platform answers a repeat (same alert id) with the case it opened."""
        response = await self._send(CASES_PATH, case.model_dump_json().encode(), str(case.alert_id), "case")
        return self._receipt(CaseReceipt, response)

    async def withdraw_case(self, update: CaseUpdate) -> CaseUpdateReceipt:
        """Withdraw a case whose alert was cancelled or cleared; a repeat (same update id) changes nothing."""
        path = case_updates_path(update.case_id)
        response = await self._send(path, update.model_dump_json().encode(), str(update.update_id), "withdrawal")
        return self._receipt(CaseUpdateReceipt, response)

    async def _send(self, path: str, body: bytes, key: str, what: str) -> httpx.Response:
        attempt = signed_attempts(self._http, path, body, key=key, secret=self._signing_secret, clock=self._clock)
        try:
            response = await send_once_more_if_stale(self._http, attempt, "governance platform")
        except httpx.HTTPError as exc:
            raise GovernanceUnavailableError(f"governance platform unreachable: {exc!r}"[:300]) from exc
        status = response.status_code
        if status >= 500 or status in _TRY_AGAIN:
            raise GovernanceUnavailableError(f"governance platform answered {status}")
        if status == 404 and _error_code(response) == _UNKNOWN_CASE:
            raise GovernanceRejectedError(f"governance platform knows no such case: {response.text[:200]}")
        if status in {401, 403, 404}:
            raise GovernanceSettingsError(
                f"governance platform answered {status} at {response.url} "
                f"({response.text[:200]}): check OUTPOST_FLEET_GOVERNANCE__URL, __TOKEN and __SIGNING_SECRETS"
            )
        if status not in {200, 201}:
            raise GovernanceRejectedError(f"governance platform refused the {what}: {status} {response.text[:200]}")
        return response

    @staticmethod
    def _receipt(model: type[_Receipt], response: httpx.Response) -> _Receipt:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise GovernanceRejectedError(f"governance platform sent an invalid receipt: {exc}"[:300]) from exc

    async def close(self) -> None:
        await self._http.aclose()


def _error_code(response: httpx.Response) -> str | None:
    """The platform's machine-readable error (``{"error": "case_not_found", ...}``), if its body has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None
