"""``outpost fleet releases upload|list|show|delete``: the releases the fleet serves to gateways (admins upload and
delete; any reader lists and shows).

A release is a directory as ``outpost release build`` (the agent) or ``outpost firmware build --sign-key`` (a
node's firmware) makes it: its files and ``release.json``, the release key's signature over every file's hash.
``upload`` checks every file against ``release.json`` here first, so nothing is sent of a release that could
never be whole; it then registers the release and sends only the files the fleet says it lacks, each streamed
from disk, so running it again after an interruption sends only what did not arrive.
"""

from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetApi, FleetUrl, Token, connect
from fleet.cli.formats import AsJson, TimeZone, confirmed, print_json, short, table, when
from protocol.errors import ReleaseError
from protocol.releases import RELEASE_FILE, ReleaseFile, SignedRelease, check_files
from protocol.updates import RELEASE_VERSION_RE, ReleaseKind

releases = typer.Typer(
    help="Signed releases of the agent and of node firmware that gateways install: upload, list, show, delete.",
    no_args_is_help=True,
)


def _version(text: str) -> str:
    if RELEASE_VERSION_RE.fullmatch(text) is None:
        raise typer.BadParameter(f"{text!r} is no release version: letters, digits and . + ! _ - (like 0.2.0)")
    return text


Kind = Annotated[
    ReleaseKind,
    typer.Argument(
        metavar="KIND", help="What the release is of: the gateway agent, or node firmware.", show_default=False
    ),
]
Version = Annotated[str, typer.Argument(metavar="VERSION", parser=_version, help="The release's version, e.g. 0.2.0.")]


def _size(size: int) -> str:
    """A number of bytes as a person reads it at a glance: ``512 bytes``, ``12.3 kB``, ``48.2 MB``."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1e3:.1f} kB"
    return f"{size / 1e6:.1f} MB"


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _read(directory: Path) -> SignedRelease:
    """The release in ``directory``, every file checked against its ``release.json``; else the command ends saying
    what does not match."""
    try:
        release = SignedRelease.read(directory)
        manifest = release.manifest
        typer.echo(
            f"checking {_files(len(manifest.files))} ({_size(manifest.total_size)}) against {directory / RELEASE_FILE}",
            err=True,
        )
        check_files(directory, manifest)
    except ReleaseError as exc:
        typer.echo(f"nothing uploaded: {exc}", err=True)
        raise typer.Exit(2) from exc
    return release


def _send(api: FleetApi, directory: Path, release: SignedRelease, missing: list[ReleaseFile]) -> Any:
    """PUT each file of ``missing``, streamed from disk, showing which and how far on stderr; the fleet's last
    answer (the release's state)."""
    kind, version = release.manifest.kind.value, release.manifest.version
    total = sum(file.size for file in missing)
    sent = 0
    state: Any = None
    for number, file in enumerate(missing, start=1):
        doing = (
            f"[{number}/{len(missing)}] sending {file.path} ({_size(file.size)}; {_size(sent)} of {_size(total)} sent)"
        )
        with (directory / file.path).open("rb") as content:  # httpx reads it in chunks: never whole in memory
            state = api.call(
                "PUT",
                f"/releases/{kind}/{version}/files/{file.path}",
                content=content,
                headers={"Content-Type": "application/octet-stream"},
                doing=doing,
            )
        sent += file.size
    typer.echo(f"sent {_files(len(missing))} ({_size(total)})", err=True)
    return state


@releases.command("upload")
def upload(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            exists=True,
            file_okay=False,
            help="The release directory (its files and release.json), as `outpost release build` or "
            "`outpost firmware build --sign-key` made it.",
        ),
    ],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Upload a signed release: every file is checked against release.json here first, then only the files the
    fleet lacks are sent, so running it again after an interruption resumes. Exits 0 once the release is ready.

    The fleet takes it only if a release key it trusts signed it (releases.trusted_keys_file)."""
    api = connect(fleet, token, ca_file)
    release = _read(directory)
    manifest = release.manifest
    state = api.call("POST", "/releases", json=release.model_dump(mode="json"))
    lacking = set(state["missing"])
    missing = [file for file in manifest.files if file.path in lacking]
    name = f"{manifest.kind} release {manifest.version}"
    if not missing:
        typer.echo(f"{name} is on the fleet already: nothing to send", err=True)
    else:
        held = len(manifest.files) - len(missing)
        if held:
            typer.echo(f"{name}: {held} of {len(manifest.files)} files on the fleet already, resuming", err=True)
        state = _send(api, directory, release, missing)
    if as_json:
        print_json(state)
    else:
        typer.echo(f"{name}: {state['state']}, {_files(state['files'])}, {_size(state['total_size'])}")
    if state["state"] != "ready":
        typer.echo(f"{name} still lacks {_files(len(state['missing']))}: run the upload again", err=True)
        raise typer.Exit(1)


@releases.command("list")
def list_releases(
    kind: Annotated[ReleaseKind | None, typer.Option(help="Only releases of this kind.", show_default=False)] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """The releases the fleet keeps, newest built first within each kind."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/releases", params={"kind": kind.value} if kind else None)
    if as_json:
        print_json(rows)
        return
    shown = [
        row | {"size": _size(row["total_size"]), "built": when(row["created_ms"], tz), "notes": short(row["notes"], 40)}
        for row in rows
    ]
    table(
        shown,
        ("kind", "version", "state", "files", "size", "built", "uploaded_by", "key_id", "notes"),
        empty=f"no {kind} releases" if kind else "no releases",
    )


def _some(paths: list[str], shown: int = 5) -> str:
    """The first ``shown`` paths, and how many more."""
    more = f" and {len(paths) - shown} more (--json lists them)" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _show(row: dict[str, Any], tz: tzinfo | None) -> None:
    state = row["state"]
    if row["ready_ms"] is not None:
        state += f" since {when(row['ready_ms'], tz)}"
    elif row["missing"]:
        state += f" ({len(row['missing'])} of {row['files']} files missing)"
    lines: dict[str, str | None] = {
        "release": f"{row['kind']} {row['version']}",
        "state": state,
        "signed by": f"release key {row['key_id']}",
        "files": f"{row['files']} ({_size(row['total_size'])})",
        "built": when(row["created_ms"], tz),
        "uploaded": f"{when(row['uploaded_ms'], tz)} by {row['uploaded_by']}",
        "install": row["install"] or None,
        "notes": row["notes"] or None,
        "missing": _some(row["missing"]) or None,
    }
    width = max(len(label) for label in lines)
    for label, value in lines.items():
        if value is not None:
            typer.echo(f"{label.ljust(width)}  {value}")


@releases.command("show")
def show(
    kind: Kind,
    version: Version,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """One release: whether it is ready (or which files it still lacks), who signed and uploaded it, its notes."""
    api = connect(fleet, token, ca_file)
    row = api.call("GET", f"/releases/{kind.value}/{version}")
    if as_json:
        print_json(row)
        return
    _show(row, tz)


@releases.command("delete")
def delete(
    kind: Kind,
    version: Version,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking first.")] = False,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Delete a release and its files from the fleet (audited): gateways can no longer download it. Asks first,
    saying what it is, unless --yes."""
    api = connect(fleet, token, ca_file)
    path = f"/releases/{kind.value}/{version}"
    if not yes:
        row = api.call("GET", path)
        about = f"{row['state']}, {_files(row['files'])}, {_size(row['total_size'])}"
        if not confirmed(f"delete {kind} release {version} ({about}) and its files from the fleet?"):
            typer.echo(f"{kind} release {version} not deleted (--yes deletes without asking)", err=True)
            raise typer.Exit(1)
    api.call("DELETE", path)
    typer.echo(f"deleted {kind} release {version}")
