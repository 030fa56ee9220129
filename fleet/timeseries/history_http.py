"""One GET of a time-series server's HTTP query API, its failures translated into fleet errors.

The same policy as the writer (:mod:`fleet.timeseries.influx`): the server down, slow, answering 5xx
or 429, or refusing the fleet (401/403/404: wrong token, database or URL) is
:class:`~fleet.errors.TimeSeriesUnavailableError`, which the API answers with 503; the server
refusing the query itself (400/422) or answering something that is not JSON is
:class:`~fleet.errors.TimeSeriesRejectedError`, a fault of this reader or a server it does not speak to.
"""

from collections.abc import Mapping
from typing import Any, Final

import httpx

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError

_BODY_CHARS: Final = 300
_QUERY_REFUSED: Final = frozenset({400, 422})


async def get_json(
    base_url: str,
    path: str,
    params: Mapping[str, str],
    *,
    headers: Mapping[str, str],
    auth: httpx.BasicAuth | None = None,
    timeout_s: float,
) -> Any:
    """The decoded JSON body of ``GET {base_url}{path}?{params}``."""
    url = base_url.rstrip("/") + path
    try:
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers, auth=auth) as client:
            response = await client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise TimeSeriesUnavailableError(f"{url} unreachable: {exc!r}"[:_BODY_CHARS]) from exc
    if response.status_code != httpx.codes.OK:
        message = f"{url} answered {response.status_code}: {response.text[:_BODY_CHARS]}"
        if response.status_code in _QUERY_REFUSED:
            raise TimeSeriesRejectedError(message)
        raise TimeSeriesUnavailableError(message)
    try:
        return response.json()
    except ValueError as exc:
        raise TimeSeriesRejectedError(
            f"{url} answered something other than JSON: {response.text[:_BODY_CHARS]}"
        ) from exc
