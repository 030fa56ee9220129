"""Opens cases on the governance platform over HTTPS (contract: :mod:`protocol.governance`).

Every request is signed (:mod:`protocol.request_signing`: HMAC-SHA256 over the timestamp, the target as
sent and the body, with the first of ``governance.signing_secrets``), afresh on every attempt, so a retry
is never refused as a replay.

httpx errors are translated here: network failures, timeouts, 5xx and 429 become
:class:`~fleet.errors.GovernanceUnavailableError` (retry); 401, 403 and 404 mean the fleet's URL or
token is wrong (:class:`~fleet.errors.GovernanceSettingsError`: keep the case, fix the settings);
any other refusal is about the case itself (:class:`~fleet.errors.GovernanceRejectedError`).
"""

from collections.abc import Callable

import httpx
from pydantic import ValidationError

from fleet.errors import GovernanceRejectedError, GovernanceSettingsError, GovernanceUnavailableError
from fleet.settings import GovernanceSettings
from protocol.clock import utc_now_ms
from protocol.governance import CASES_PATH, IDEMPOTENCY_HEADER, CaseReceipt, CaseRequest
from protocol.request_signing import signature_headers


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
        )

    async def open_case(self, case: CaseRequest) -> CaseReceipt:
        body = case.model_dump_json().encode()
        request = self._http.build_request(
            "POST",
            CASES_PATH,
            content=body,
            headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: str(case.alert_id)},
        )
        target = request.url.raw_path.decode("ascii")
        request.headers.update(signature_headers(self._signing_secret, "POST", target, self._clock(), body))
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise GovernanceUnavailableError(f"governance platform unreachable: {exc!r}"[:300]) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise GovernanceUnavailableError(f"governance platform answered {response.status_code}")
        if response.status_code in {401, 403, 404}:
            raise GovernanceSettingsError(
                f"governance platform answered {response.status_code} at {response.url} "
                f"({response.text[:200]}): check OUTPOST_FLEET_GOVERNANCE__URL, __TOKEN and __SIGNING_SECRETS"
            )
        if response.status_code not in {200, 201}:
            raise GovernanceRejectedError(
                f"governance platform refused the case: {response.status_code} {response.text[:200]}"
            )
        try:
            return CaseReceipt.model_validate_json(response.content)
        except ValidationError as exc:
            raise GovernanceRejectedError(f"governance platform sent an invalid receipt: {exc}"[:300]) from exc

    async def close(self) -> None:
        await self._http.aclose()
