"""Every Outpost dashboard, in both flavours: what ``outpost dashboards export`` writes and ``push`` publishes."""

from collections.abc import Callable
from typing import Final

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.board import generated
from dashboards.boards.alerts_cases import alerts_cases
from dashboards.boards.county_overview import county_overview
from dashboards.boards.fleet_operations import fleet_operations
from dashboards.boards.village_detail import village_detail
from dashboards.model import Flavour, GeneratedDashboard
from dashboards.packaged import GENERATED_DIR

__all__ = ["BOARDS", "GENERATED_DIR", "build_all"]  # GENERATED_DIR: where the JSON is committed (dashboards.packaged)

BOARDS: Final[tuple[Callable[[Flavour], Dashboard], ...]] = (
    county_overview,
    village_detail,
    alerts_cases,
    fleet_operations,
)


def build_all(flavours: tuple[Flavour, ...] = tuple(Flavour)) -> list[GeneratedDashboard]:
    return [generated(flavour, board(flavour)) for flavour in flavours for board in BOARDS]
