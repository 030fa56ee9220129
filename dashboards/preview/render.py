"""Renders dashboards to PNG files: every panel's targets run on one source, drawn at the panel's place."""

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import matplotlib.pyplot as plt

from dashboards.errors import QueryError
from dashboards.model import GeneratedDashboard
from dashboards.preview.drawing import PanelData, figure
from dashboards.preview.sources import Series, Source

logger = logging.getLogger(__name__)

DPI: Final = 80


async def panel_data(dashboard: GeneratedDashboard, source: Source) -> dict[int, PanelData]:
    """Each panel's series from ``source`` (by its index), or the error its query gave."""
    data: dict[int, PanelData] = {}
    for index, panel in enumerate(dashboard.model["panels"]):
        found: list[Series] = []
        try:
            for target in panel.get("targets", []):
                found += await source.run(panel, target)
        except QueryError as exc:
            logger.warning("%s / %s: %s", dashboard.uid, panel.get("title"), exc)
            data[index] = str(exc)
            continue
        data[index] = found
    return data


async def render(dashboards: Sequence[GeneratedDashboard], source: Source, out: Path) -> list[Path]:
    """One ``<uid>.png`` per dashboard under ``out``; their paths."""
    written = []
    for dashboard in dashboards:
        data = await panel_data(dashboard, source)
        written.append(await asyncio.to_thread(_draw, dashboard, data, out / f"{dashboard.uid}.png"))
    return written


def _draw(dashboard: GeneratedDashboard, data: dict[int, PanelData], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn = figure(dashboard.model, data)
    try:
        drawn.savefig(path, dpi=DPI, facecolor=drawn.get_facecolor())
    finally:
        plt.close(drawn)
    return path
