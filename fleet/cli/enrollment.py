"""``outpost fleet enrollment …`` and ``outpost fleet gateways revoke|restore``: enrolling gateways from a terminal.

A technician (or admin) creates a single-use enrollment token for a village and gets its *enrollment code*,
also as a QR code to scan on site; on the gateway, ``outpost gateway enroll --code CODE`` redeems it. Same
connection options and API token as the other ``outpost fleet`` commands (:mod:`fleet.cli.client`).
"""

import io
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from fleet.cli.admin import gateways
from fleet.cli.client import DEFAULT_FLEET_URL, FleetUrl, Token, call, parse_duration_s, table
from protocol.enrollment import enrollment_code

enrollment = typer.Typer(
    help="Enrollment tokens: how a gateway gets its identity and credentials.", no_args_is_help=True
)


def qr_text(data: str) -> str:
    """``data`` as a QR code drawn with block characters, for a terminal (dark on light)."""
    import qrcode  # type: ignore[import-untyped]  # noqa: PLC0415 - only this command needs it

    code = qrcode.QRCode(border=2)
    code.add_data(data)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def _when(ms: Any) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@enrollment.command("create")
def create(
    village: Annotated[str, typer.Option(help="The village the gateway will stand in.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    gateway: Annotated[
        str | None,
        typer.Option(help="Enroll this gateway id: new, or an existing one again (re-enrollment, replaced hardware)."),
    ] = None,
    ttl: Annotated[
        str | None, typer.Option(help="Valid for this long (30m, 2h, 1d); default: the fleet's (30 min).")
    ] = None,
    qr: Annotated[bool, typer.Option("--qr/--no-qr", help="Also draw the enrollment code as a QR code.")] = True,
    public_url: Annotated[
        str | None,
        typer.Option(help="The fleet's URL as the gateway reaches it (default: the fleet's public_url, else --fleet)."),
    ] = None,
) -> None:
    """Create a single-use enrollment token; its code is printed once, last on stdout."""
    body = {"village_id": village, "gateway_id": gateway, "ttl_s": parse_duration_s(ttl) if ttl else None}
    issued = call(fleet, token, "POST", "/enrollment-tokens", json=body)
    code = enrollment_code(public_url, issued["secret"]) if public_url else issued["code"]
    if code is None:
        code = enrollment_code(fleet, issued["secret"])
    target = f"gateway {gateway}" if gateway else "a new gateway"
    typer.echo(
        f"enrollment token {issued['id']} for {target} in {village}, single use, valid until "
        f"{_when(issued['expires_ms'])}. On the gateway: sudo outpost gateway enroll --code '<code>'",
        err=True,
    )
    if qr:
        typer.echo(qr_text(code), nl=False)
    typer.echo(code)


@enrollment.command("list")
def list_tokens(
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    show_all: Annotated[bool, typer.Option("--all", help="Also used, expired and revoked tokens.")] = False,
) -> None:
    """Enrollment tokens, newest first (never their secrets)."""
    rows = call(fleet, token, "GET", "/enrollment-tokens", params={"include_inactive": str(show_all).lower()})
    for row in rows:
        for column in ("expires_ms", "used_ms", "revoked_ms"):
            row[column] = _when(row[column])
    table(rows, ("id", "village_id", "gateway_id", "created_by", "expires_ms", "used_ms", "enrolled_gateway_id"))


@enrollment.command("revoke-token")
def revoke_token(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (from `list`).")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """Make an unused enrollment token unusable at once."""
    call(fleet, token, "DELETE", f"/enrollment-tokens/{token_id}")
    typer.echo(f"revoked enrollment token {token_id}")


@gateways.command("revoke")
def revoke_gateway(
    gateway_id: Annotated[str, typer.Argument(metavar="ID")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """Refuse a gateway's broker logins and close its session (stolen, or taken out of service)."""
    call(fleet, token, "POST", f"/gateways/{gateway_id}/revoke")
    typer.echo(f"revoked gateway {gateway_id}: the broker refuses its logins until it is restored or re-enrolled")


@gateways.command("restore")
def restore_gateway(
    gateway_id: Annotated[str, typer.Argument(metavar="ID")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """Accept a revoked gateway's broker logins again, with the credentials it had."""
    call(fleet, token, "POST", f"/gateways/{gateway_id}/restore")
    typer.echo(f"restored gateway {gateway_id}")
