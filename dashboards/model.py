"""A dashboard as generated: its flavour, identity and Grafana JSON model."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Flavour(StrEnum):
    """Which data source a dashboard's queries are written for."""

    PROMETHEUS = "prometheus"  # PromQL, through Grafana's Prometheus data source (VictoriaMetrics)
    INFLUXDB = "influxdb"  # InfluxQL, through Grafana's InfluxDB data source (1.x, 2.x v1 API, 3.x)


@dataclass(frozen=True, slots=True)
class GeneratedDashboard:
    """``model`` is the dashboard JSON Grafana's HTTP API takes as ``dashboard``; ``uid`` and ``title`` are its own."""

    flavour: Flavour
    uid: str
    title: str
    model: dict[str, Any]
