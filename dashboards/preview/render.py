"""Renders dashboards to PNG files: every panel's targets run on one source, drawn at the panel's place.

A panel whose query fails is drawn with the error in red, and the rendering then fails listing every such
panel (:class:`~dashboards.errors.PreviewFailedError`); a source that cannot be reached stops it at once
(:class:`~dashboards.errors.SourceUnreachableError`)."""

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import matplotlib.pyplot as plt

from dashboards.errors import PreviewFailedError, QueryError, SourceUnreachableError
from dashboards.model import GeneratedDashboard
from dashboards.preview.drawing import PanelData, figure
from dashboards.preview.sources import Series, Source

logger = logging.getLogger(__name__)

DPI: Final = 80


async def panel_data(dashboard: GeneratedDashboard, source: Source) -> dict[int, PanelData]:
    """Each panel's series from ``source`` (by its index), or the error its query gave.

    Raises :class:`SourceUnreachableError` when the source gives no answer at all."""
    data: dict[int, PanelData] = {}
    for index, panel in enumerate(dashboard.model["panels"]):
        found: list[Series] = []
        try:
            for target in panel.get("targets", []):
                found += await source.run(panel, target)
        except SourceUnreachableError:
            raise
        except QueryError as exc:
            logger.debug("%s / %s: %s", dashboard.uid, panel.get("title"), exc)
            data[index] = str(exc)
            continue
        data[index] = found
    return data


async def render(dashboards: Sequence[GeneratedDashboard], source: Source, out: Path) -> list[Path]:
    """One ``<uid>.png`` per dashboard under ``out``; their paths.

    Raises :class:`PreviewFailedError` after drawing them when panels show errors, and
    :class:`SourceUnreachableError` at once when the source cannot be reached."""
    written: list[Path] = []
    failures: list[str] = []
    for dashboard in dashboards:
        data = await panel_data(dashboard, source)
        panels = dashboard.model["panels"]
        failures += [
            f"{dashboard.uid} / {panels[index].get('title')}: {found}"
            for index, found in data.items()
            if isinstance(found, str)
        ]
        written.append(await asyncio.to_thread(_draw, dashboard, data, out / f"{dashboard.uid}.png"))
    if failures:
        raise PreviewFailedError(failures, written)
    return written


def _draw(dashboard: GeneratedDashboard, data: dict[int, PanelData], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn = figure(dashboard.model, data)
    try:
        drawn.savefig(path, dpi=DPI, facecolor=drawn.get_facecolor())
    finally:
        plt.close(drawn)
    return path
