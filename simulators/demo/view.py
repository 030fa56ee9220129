"""The demo's live view: gateways by village, and the flow from telemetry to cases."""

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fleet.api.schemas import HealthReport
from fleet.db.schema import GatewayRow
from simulators.governance.recorder import RecordedCase


def _age(now_ms: int, then_ms: int | None) -> str:
    return "-" if then_ms is None else f"{max(0.0, (now_ms - then_ms) / 1000):.1f}s ago"


def render(
    *,
    now_ms: int,
    elapsed_s: float,
    duration_s: float | None,
    gateways: list[GatewayRow],
    health: HealthReport,
    points_per_s: float,
    presses: int,
    cases: list[RecordedCase],
    fleet_url: str,
    platform_url: str,
) -> Group:
    limit = f" / {duration_s:.0f}s" if duration_s else " (Ctrl-C to stop)"
    header = Text.assemble(
        ("Outpost demo", "bold"),
        f"  {elapsed_s:.0f}s{limit}   fleet API {fleet_url}   governance platform {platform_url}",
    )

    fleet = Table(title="Gateways", expand=True)
    for column in ("village", "gateway", "state", "last heard", "cpu %", "mem %"):
        fleet.add_column(column)
    for row in gateways:
        state = Text("● online", "green") if row.online else Text(f"● offline ({row.presence_reason})", "red")
        last = row.last_health or {}
        fleet.add_row(
            row.village_id,
            row.id,
            state,
            _age(now_ms, row.last_seen_ms),
            f"{last.get('cpu_percent', 0):.0f}",
            f"{last.get('memory_percent', 0):.0f}",
        )

    online = sum(1 for row in gateways if row.online)
    flow = Table.grid(padding=(0, 3))
    flow.add_row(
        f"gateways online [bold]{online}/{len(gateways)}[/]",
        f"telemetry [bold]{points_per_s:.0f}[/] points/s ({health.timeseries.written_points} stored)",
        f"panic presses [bold]{presses}[/]",
        f"alerts raised [bold]{health.alerts.raised}[/]",
        f"cases delivered [bold]{len(cases)}[/]",
        f"rejected msgs [bold]{sum(health.ingest.rejected.values())}[/]",
    )

    recent = Table(title="Latest cases on the governance platform", expand=True)
    for column in ("case", "village", "gateway / device", "grid", "press → case"):
        recent.add_column(column)
    for case in cases[-6:][::-1]:
        request = case.request
        delay = case.received_at_ms - request.raised_at
        recent.add_row(
            case.case_id,
            request.village_id,
            f"{request.gateway_id} / {request.device_id}",
            request.grid_id or "-",
            Text(f"{delay} ms", "green" if delay < 2000 else "red"),
        )
    return Group(header, fleet, Panel(flow, title="Flow"), recent)
