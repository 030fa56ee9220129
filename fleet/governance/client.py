"""Opens cases on the governance platform over HTTPS (contract: :mod:`protocol.governance`).

httpx errors are translated here: network failures, timeouts, 5xx and 429 become
:class:`~fleet.errors.GovernanceUnavailableError` (retry); 401, 403 and 404 mean the fleet's URL or
token is wrong (:class:`~fleet.errors.GovernanceSettingsError`: keep the case, fix the settings);
any other refusal is about the case itself (:class:`~fleet.errors.GovernanceRejectedError`).
"""

import httpx
from pydantic import ValidationError

from fleet.errors import GovernanceRejectedError, GovernanceSettingsError, GovernanceUnavailableError
from fleet.settings import GovernanceSettings
from protocol.governance import CASES_PATH, IDEMPOTENCY_HEADER, CaseReceipt, CaseRequest


class GovernanceClient:
    def __init__(self, settings: GovernanceSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if settings.url is None:
            raise ValueError("GovernanceClient needs governance.url")
        self._http = httpx.AsyncClient(
            base_url=str(settings.url).rstrip("/"),
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout_s,
            verify=settings.verify_tls,
            transport=transport,
        )

    async def open_case(self, case: CaseRequest) -> CaseReceipt:
        try:
            response = await self._http.post(
                CASES_PATH,
                content=case.model_dump_json(),
                headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: str(case.alert_id)},
            )
        except httpx.HTTPError as exc:
            raise GovernanceUnavailableError(f"governance platform unreachable: {exc!r}"[:300]) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise GovernanceUnavailableError(f"governance platform answered {response.status_code}")
        if response.status_code in {401, 403, 404}:
            raise GovernanceSettingsError(
                f"governance platform answered {response.status_code} at {response.url}: "
                "check OUTPOST_FLEET_GOVERNANCE__URL and __TOKEN"
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
