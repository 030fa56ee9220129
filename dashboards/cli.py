"""``outpost dashboards``: generate the Grafana dashboards as JSON, and publish them to a Grafana.

The dashboards are built with grafana-foundation-sdk (the ``dashboards`` extra), imported only by the
commands that build them: ``provisioning`` copies files this Outpost carries and needs nothing more.
"""

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from dashboards.county_copies import County
from dashboards.errors import DashboardsError, PreviewFailedError
from dashboards.generated_files import read_generated, write_generated
from dashboards.model import Flavour, GeneratedDashboard
from dashboards.packaged import ENV_FILE, GENERATED_DIR, copy_provisioning, writable_generated_dir

app = typer.Typer(
    help="Grafana dashboards for command staff and engineers: generate them as JSON, publish them to Grafana.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("export")
def export(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write <flavour>/<uid>.json, e.g. the directory a Grafana is provisioned from. Default: "
            "the committed dashboards/generated in a checkout; with --check, the JSON this Outpost carries.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail if the files differ from what the code builds.")
    ] = False,
) -> None:
    """Build every dashboard in both flavours (PromQL for VictoriaMetrics, InfluxQL for InfluxDB) as Grafana JSON.

    Files of dashboards the code no longer builds are removed, so a Grafana provisioned from the
    directory drops them too.
    """
    from dashboards.catalogue import build_all  # noqa: PLC0415 - grafana-foundation-sdk only when building

    if out is None:
        out = GENERATED_DIR if check else writable_generated_dir()
    if out is None:
        typer.echo(
            "give --out DIR: this Outpost is installed, and its own copy of the dashboards is not rewritten "
            "(e.g. --out /var/lib/grafana/dashboards/outpost, where Grafana's provisioning reads them)",
            err=True,
        )
        raise typer.Exit(2)
    built = build_all()
    if check:
        on_disk = {(d.flavour, d.uid): d.model for d in _read(out)}
        differing = sorted(d.uid for d in built if on_disk.pop((d.flavour, d.uid), None) != d.model)
        extra = sorted(uid for (_, uid) in on_disk)
        if differing or extra:
            typer.echo(
                f"out of date in {out}: {', '.join(differing + extra)}; run `outpost dashboards export`", err=True
            )
            raise typer.Exit(1)
        typer.echo(f"{len(built)} dashboards in {out} are up to date")
        return
    try:
        result = write_generated(built, out, prune=True)
    except (DashboardsError, OSError) as exc:
        typer.echo(f"export failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for path in result.written:
        typer.echo(f"wrote {path}")
    for path in result.removed:
        typer.echo(f"removed {path}")
    typer.echo(f"{len(built)} dashboards: {len(result.written)} written, {len(result.unchanged)} unchanged")


@app.command("push")
def push(
    grafana: Annotated[str, typer.Option(help="The Grafana's base URL, e.g. https://grafana.county.example")],
    token: Annotated[
        str,
        typer.Option(
            envvar="OUTPOST_GRAFANA_TOKEN",
            help="A Grafana service-account token with the Editor role (or set OUTPOST_GRAFANA_TOKEN).",
        ),
    ],
    county: Annotated[
        list[str] | None,
        typer.Option(
            help="A county to publish for, as ID or ID=NAME; repeat for several. Each gets its own folder and "
            "copies of the dashboards opening on it. None: one shared folder.",
        ),
    ] = None,
    flavour: Annotated[
        Flavour, typer.Option(help="prometheus: PromQL (VictoriaMetrics); influxdb: InfluxQL (InfluxDB).")
    ] = Flavour.PROMETHEUS,
    source: Annotated[
        Path | None,
        typer.Option("--from", help="Publish the JSON in this directory instead of building the dashboards."),
    ] = None,
    verify_tls: Annotated[bool, typer.Option(help="Check the Grafana's TLS certificate.")] = True,
    force: Annotated[bool, typer.Option(help="Save even dashboards Grafana already holds unchanged.")] = False,
) -> None:
    """Publish the dashboards to a Grafana through its HTTP API: same uids, overwritten in place, a folder per county.

    Running it again updates what changed and leaves the rest alone.
    """
    from dashboards.catalogue import build_all  # noqa: PLC0415 - grafana-foundation-sdk only when building
    from dashboards.grafana_push import push as push_to_grafana  # noqa: PLC0415 - grafana-client only when pushing

    counties = [_county(text) for text in county or []]
    dashboards = _read(source) if source is not None else build_all((flavour,))
    try:
        report = push_to_grafana(
            dashboards, grafana, token, counties, flavour=flavour, verify_tls=verify_tls, force=force
        )
    except DashboardsError as exc:
        typer.echo(f"push failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for line in report.lines():
        typer.echo(line)


@app.command("preview")
def preview(
    prometheus: Annotated[
        str | None, typer.Option(help="A VictoriaMetrics (or Prometheus) URL: preview the PromQL dashboards.")
    ] = None,
    influxdb: Annotated[str | None, typer.Option(help="An InfluxDB URL: preview the InfluxQL dashboards.")] = None,
    database: Annotated[str, typer.Option(help="The InfluxDB database the fleet writes to.")] = "outpost",
    county: Annotated[list[str] | None, typer.Option(help="Show this county (repeatable; default: all).")] = None,
    town: Annotated[list[str] | None, typer.Option(help="Show this town (default: all).")] = None,
    village: Annotated[list[str] | None, typer.Option(help="Show this village (default: all).")] = None,
    since: Annotated[str, typer.Option(help="How far back from now, e.g. 30m, 6h, 2d.")] = "6h",
    out: Annotated[Path, typer.Option(help="Where to write <uid>.png.")] = Path("dashboard-previews"),
) -> None:
    """Draw each dashboard as a PNG from a real data source's answers, laid out like Grafana's grid (no Grafana needed).

    Panels whose query fails show the server's error in red, and the command then lists them and exits 1; a
    data source that cannot be reached stops it at once (exit 1, no previews).
    """
    from dashboards.catalogue import build_all  # noqa: PLC0415 - grafana-foundation-sdk only when building
    from dashboards.preview.interpolation import TimeRange, seconds  # noqa: PLC0415 - matplotlib only here
    from dashboards.preview.run import preview as render_previews  # noqa: PLC0415

    if (prometheus is None) == (influxdb is None):
        raise typer.BadParameter("give exactly one of --prometheus and --influxdb")
    try:
        span_ms = round(seconds(since) * 1000)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    now_ms = int(time.time() * 1000)
    flavour, url = (Flavour.PROMETHEUS, prometheus) if prometheus is not None else (Flavour.INFLUXDB, influxdb or "")
    places = {name: values for name, values in (("county", county), ("town", town), ("village", village)) if values}
    try:
        written = asyncio.run(
            render_previews(build_all((flavour,)), flavour, url, TimeRange(now_ms - span_ms, now_ms), places, out,
                            database=database)
        )  # fmt: skip
    except PreviewFailedError as exc:
        for path in exc.written:
            typer.echo(f"wrote {path}")
        typer.echo(f"preview failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    except DashboardsError as exc:
        typer.echo(f"preview failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for path in written:
        typer.echo(f"wrote {path}")


@app.command("provisioning")
def provisioning(
    out: Annotated[
        Path,
        typer.Option(
            help="Grafana's provisioning directory: datasources/outpost.yaml and dashboards/outpost.yaml go under it "
            "(usually /etc/grafana/provisioning)."
        ),
    ],
    env_file: Annotated[
        Path | None,
        typer.Option(
            help=f"Where the variables' defaults go, for Grafana's EnvironmentFile= (default: OUT/{ENV_FILE}); "
            "an existing file is kept.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the Grafana provisioning files this Outpost carries: Outpost's two data sources and a file provider
    per flavour reading $OUTPOST_DASHBOARDS_DIR (fill it with `outpost dashboards export --out`).

    See dashboards/provisioning/README.md for the variables and how Grafana loads them.
    """
    try:
        result = copy_provisioning(out, env_file or out / ENV_FILE)
    except OSError as exc:
        typer.echo(f"provisioning failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for path in result.written:
        typer.echo(f"wrote {path}")
    for path in result.unchanged:
        typer.echo(f"unchanged {path}")
    for path in result.kept:
        typer.echo(f"kept {path} (it exists: compare it with the new defaults by hand)")


def _county(text: str) -> County:
    county_id, _, name = text.partition("=")
    try:
        return County(county_id.strip(), name.strip() or None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--county") from exc


def _read(directory: Path) -> list[GeneratedDashboard]:
    try:
        return list(read_generated(directory))
    except DashboardsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
