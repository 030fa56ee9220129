"""``outpost fleet enrollment …`` and ``outpost fleet gateways revoke|restore``: enrolling gateways from a terminal.

A technician (or admin) creates a single-use enrollment token for a village and gets its *enrollment code*,
also as a QR code to scan on site; on the gateway, ``outpost gateway enroll --code CODE`` redeems it. Same
connection options and API token as the other ``outpost fleet`` commands (:mod:`fleet.cli.client`).
"""

import io
from typing import Annotated

import typer

from fleet.cli.admin import GatewayId, gateways
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import DURATION_HELP, AsJson, TimeZone, duration, print_json, table, when
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


_MINUTE_MS = 60_000
_WEEK_MS = 7 * 86_400_000


@enrollment.command("create")
def create(
    village: Annotated[str, typer.Option(help="The village the gateway will stand in.")],
    gateway: Annotated[
        str | None,
        typer.Option(help="Enroll this gateway id: new, or an existing one again (re-enrollment, replaced hardware)."),
    ] = None,
    ttl: Annotated[
        int | None,
        typer.Option(
            parser=duration(at_least_ms=_MINUTE_MS, at_most_ms=_WEEK_MS, whole_seconds=True),
            metavar="DURATION",
            help=f"Valid for this long, 1m to 7d; default: the fleet's (30m). {DURATION_HELP}",
        ),
    ] = None,
    qr: Annotated[bool, typer.Option("--qr/--no-qr", help="Also draw the enrollment code as a QR code.")] = True,
    public_url: Annotated[
        str | None,
        typer.Option(help="The fleet's URL as the gateway reaches it (default: the fleet's public_url, else --fleet)."),
    ] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
) -> None:
    """Create a single-use enrollment token; its code is printed once, last on stdout."""
    api = connect(fleet, token, ca_file)
    body = {"village_id": village, "gateway_id": gateway, "ttl_s": None if ttl is None else ttl // 1000}
    issued = api.call("POST", "/enrollment-tokens", json=body)
    code = enrollment_code(public_url, issued["secret"]) if public_url else issued["code"]
    if code is None:
        code = enrollment_code(fleet, issued["secret"])
    target = f"gateway {gateway}" if gateway else "a new gateway"
    typer.echo(
        f"enrollment token {issued['id']} for {target} in {village}, single use, valid until "
        f"{when(issued['expires_ms'], tz)}. On the gateway: sudo outpost gateway enroll --code '<code>'",
        err=True,
    )
    if qr:
        typer.echo(qr_text(code), nl=False)
    typer.echo(code)


@enrollment.command("list")
def list_tokens(
    show_all: Annotated[bool, typer.Option("--all", help="Also used, expired and revoked tokens.")] = False,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Enrollment tokens, newest first (never their secrets)."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/enrollment-tokens", params={"include_inactive": str(show_all).lower()})
    if as_json:
        print_json(rows)
        return
    shown = [
        row
        | {"expires": when(row["expires_ms"], tz), "used": when(row["used_ms"], tz)}
        | {"revoked": when(row["revoked_ms"], tz)}
        for row in rows
    ]
    table(
        shown,
        ("id", "village_id", "gateway_id", "created_by", "expires", "used", "enrolled_gateway_id", "revoked"),
        empty="no enrollment tokens",
    )


@enrollment.command("revoke-token", hidden=True, help="The old name of `enrollment revoke`.")
@enrollment.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The enrollment token's id (from `list`).")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Make an unused enrollment token unusable at once; it stays listed, as revoked."""
    api = connect(fleet, token, ca_file)
    api.call("DELETE", f"/enrollment-tokens/{token_id}")
    typer.echo(f"revoked enrollment token {token_id}")


@gateways.command("revoke")
def revoke_gateway(
    gateway_id: GatewayId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Refuse a gateway's broker logins and close its session (stolen, or taken out of service)."""
    api = connect(fleet, token, ca_file)
    api.call("POST", f"/gateways/{gateway_id}/revoke")
    typer.echo(f"revoked gateway {gateway_id}: the broker refuses its logins until it is restored or re-enrolled")


@gateways.command("restore")
def restore_gateway(
    gateway_id: GatewayId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Accept a revoked gateway's broker logins again, with the credentials it had (admins)."""
    api = connect(fleet, token, ca_file)
    api.call("POST", f"/gateways/{gateway_id}/restore")
    typer.echo(f"restored gateway {gateway_id}")
