"""The demo's live view: gateways by village, their sensor nodes, and the flow from telemetry to cases."""

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fleet.api.schemas import HealthReport
from fleet.db.schema import GatewayRow
from simulators.governance.recorder import RecordedCase
from simulators.nodes.village import LOW_BATTERY_V, NodeStatus

_LINK_STYLE = {"online": "green", "connecting": "yellow"}  # anything else (Wi-Fi lost, off) is red


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
    nodes: list[tuple[str, NodeStatus]],
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
    for column in ("case", "kind", "village", "gateway / device", "grid", "raised → case"):
        recent.add_column(column)
    for case in cases[-6:][::-1]:
        request = case.request
        delay = case.received_at_ms - request.raised_at
        recent.add_row(
            case.case_id,
            request.kind,
            request.village_id,
            f"{request.gateway_id} / {request.device_id}",
            request.grid_id or "-",
            Text(f"{delay} ms", "green" if delay < 2000 else "red"),
        )
    if not nodes:
        return Group(header, fleet, Panel(flow, title="Flow"), recent)
    return Group(header, fleet, _nodes_table(nodes), Panel(flow, title="Flow"), recent)


def _nodes_table(nodes: list[tuple[str, NodeStatus]]) -> Table:
    table = Table(title="Sensor nodes (MicroPython firmware, simulated pins)", expand=True)
    for column in ("village", "node", "role", "link", "boot", "battery", "sent", "fault now"):
        table.add_column(column)
    for village_id, node in nodes:
        battery = "mains" if node.battery_v is None else f"{node.battery_v:.2f} V"
        low = node.battery_v is not None and node.battery_v < LOW_BATTERY_V
        table.add_row(
            village_id,
            node.node_id,
            node.role,
            Text(f"● {node.link}", _LINK_STYLE.get(node.link, "red")),
            "-" if node.boot is None else str(node.boot),
            Text(battery, "red" if low else ""),
            str(node.sent),
            Text(node.fault or "-", "red" if node.fault else ""),
        )
    return table
