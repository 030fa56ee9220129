"""``outpost release``: make the release key, build a signed agent release, check a release.

The release key signs what gateways install (agent bundles, node firmware): keep its private half off the
fleet, with whoever builds releases; the fleet and every gateway hold only the public half
(``releases.trusted_keys_file`` in the fleet's settings, ``release_key`` in the gateway's).
"""

import os
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from outpost_cli.release_build import (
    DEFAULT_EXTRAS,
    PASSWORD_VARIABLE,
    AgentBuild,
    ReleaseBuildError,
    build_agent_release,
    load_release_key,
)
from protocol.config_signing import key_id, load_public_keys, private_key_pem, public_key_pem
from protocol.errors import ReleaseError, SigningKeyError
from protocol.releases import SignedRelease, check_files, verify_release

DEFAULT_OUT: Final = Path("build/release")

app = typer.Typer(
    help="Releases of the gateway agent: make the release key, build a signed bundle, verify one.",
    no_args_is_help=True,
)

KeyOption = Annotated[
    Path,
    typer.Option("--key", "-k", help="The release key (Ed25519 private key, PEM), from `outpost release keygen`."),
]
TrustOption = Annotated[
    Path,
    typer.Option("--trust", help="File of the trusted release public keys (PEM or base64, one or more)."),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _write_new(path: Path, text: str, mode: int) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        _fail(f"{path} exists: a release key is never overwritten (move it away first)")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}")
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)


@app.command("keygen")
def keygen_command(
    out: Annotated[Path, typer.Argument(help="Where to write the private key; the public key goes to OUT.pub.")],
) -> None:
    """Make a new Ed25519 release key: the private key (0600, encrypted if OUTPOST_RELEASE_KEY_PASSWORD is set)
    and its public half for the fleet's and the gateways' trusted keys."""
    key = Ed25519PrivateKey.generate()
    password = os.environ.get(PASSWORD_VARIABLE) or None
    public = out.with_name(out.name + ".pub")
    _write_new(out, private_key_pem(key, password.encode() if password else None), 0o600)
    try:
        _write_new(public, public_key_pem(key.public_key()), 0o644)
    except typer.Exit:
        out.unlink()  # never leave the new private key beside another key's public half
        raise
    typer.echo(f"release key {key_id(key.public_key())}: private {out}{' (encrypted)' if password else ''}")
    typer.echo(f"public key: {public} (give it to the fleet: releases.trusted_keys_file, and to gateways)")


@app.command("build")
def build_command(
    key: KeyOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to build the release in.")] = DEFAULT_OUT,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Outpost's source tree (default: this one, when run from a checkout)."),
    ] = None,
    wheel: Annotated[
        Path | None, typer.Option("--wheel", help="Outpost's wheel, already built (instead of --source).")
    ] = None,
    extras: Annotated[str, typer.Option("--extras", help="The extras a gateway installs.")] = DEFAULT_EXTRAS,
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            help="A wheel platform tag of the gateways (repeatable), e.g. manylinux2014_aarch64 for a Raspberry Pi "
            "on 64-bit OS. Default: this machine's.",
        ),
    ] = None,
    python_version: Annotated[
        str | None, typer.Option("--python-version", help="The gateways' Python, e.g. 3.11. Default: this one's.")
    ] = None,
    find_links: Annotated[
        list[Path] | None,
        typer.Option("--find-links", help="A directory of wheels to take dependencies from first (repeatable)."),
    ] = None,
    notes: Annotated[str, typer.Option("--notes", help="What changed, for the people who roll it out.")] = "",
) -> None:
    """Build a signed agent release: Outpost's wheel, every wheel it needs, pinned, hashed and signed."""
    if source is None and wheel is None:
        checkout = Path(__file__).resolve().parents[1]
        source = checkout if (checkout / "pyproject.toml").is_file() else None
    try:
        signing_key = load_release_key(key, os.environ.get(PASSWORD_VARIABLE))
        build = AgentBuild(
            out=out,
            source=source,
            wheel=wheel,
            extras=extras,
            platforms=tuple(platform or ()),
            python_version=python_version,
            find_links=tuple(find_links or ()),
            notes=notes,
        )
        release = build_agent_release(build, signing_key, typer.echo)
    except ReleaseBuildError as exc:
        _fail(str(exc))
    manifest = release.manifest
    typer.echo(
        f"agent release {manifest.version}: {len(manifest.files)} files, {manifest.total_size / 1e6:.1f} MB, "
        f"signed by {release.key_id}"
    )
    typer.echo(f"upload it: outpost fleet releases upload {out}")


@app.command("verify")
def verify_command(
    directory: Annotated[Path, typer.Argument(help="The release directory (with release.json).")],
    trust: TrustOption,
) -> None:
    """Check a release's signature against trusted keys and every file against its hash."""
    try:
        trusted = load_public_keys(trust.read_bytes())
        release = SignedRelease.read(directory)
        verify_release(trusted, release)
        check_files(directory, release.manifest)
    except OSError as exc:
        _fail(f"cannot read {trust}: {exc.strerror}")
    except (SigningKeyError, ReleaseError) as exc:
        _fail(str(exc))
    manifest = release.manifest
    typer.echo(f"ok: {manifest.kind} {manifest.version}, {len(manifest.files)} files as signed by {release.key_id}")
