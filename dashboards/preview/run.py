"""Renders previews from a data source's URL: the source and variables set up, then :func:`render`."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from dashboards.model import Flavour, GeneratedDashboard
from dashboards.preview.interpolation import Interpolation, TimeRange
from dashboards.preview.render import render
from dashboards.preview.sources import InfluxSource, PromSource, Source
from dashboards.variables import PLACES

REQUEST_TIMEOUT_S = 30.0


async def preview(
    dashboards: Sequence[GeneratedDashboard],
    flavour: Flavour,
    url: str,
    time_range: TimeRange,
    places: Mapping[str, Sequence[str]],
    out: Path,
    *,
    database: str = "outpost",
    auth: tuple[str, str] | None = None,
) -> list[Path]:
    """PNG previews of the ``flavour`` dashboards, their queries run on ``url`` for ``places`` (a variable's
    values; a variable not given is "All") over ``time_range``.

    Raises :class:`~dashboards.errors.SourceUnreachableError` when ``url`` cannot be reached, and
    :class:`~dashboards.errors.PreviewFailedError` (once all are drawn) when panels show errors."""
    interpolation = Interpolation(time_range, {place: places.get(place, ()) for place in PLACES})
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        source: Source = (
            PromSource(client, url, interpolation)
            if flavour is Flavour.PROMETHEUS
            else InfluxSource(client, url, interpolation, database, auth)
        )
        return await render([d for d in dashboards if d.flavour is flavour], source, out)
