"""Building releases: an agent bundle installable offline, a firmware set, each signed with the release key.

An agent release is a directory::

    release.json          the signed manifest (protocol.releases)
    constraints.txt       name==version of every wheel below: what pip may install, and nothing else
    wheels/*.whl          Outpost's wheel and every wheel it needs for ``outpost[edge]``

made by pip itself (``pip wheel`` for Outpost, ``pip download`` for its dependencies), so a gateway installs it
with ``pip install --no-index --find-links wheels --constraint constraints.txt 'outpost[edge]==VERSION'`` and
never reaches an index. Wheels for another machine (a Raspberry Pi: ``--platform manylinux2014_aarch64``) come
from pip's ``--platform``/``--python-version`` options; Outpost's own wheel is pure Python.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.config_signing import load_private_key
from protocol.errors import ReleaseError, SigningKeyError
from protocol.releases import RELEASE_FILE, ReleaseManifest, SignedRelease, describe, sign_release
from protocol.updates import RELEASE_VERSION_RE, ReleaseKind

WHEELS: Final = "wheels"
CONSTRAINTS: Final = "constraints.txt"
DISTRIBUTION: Final = "outpost"
DEFAULT_EXTRAS: Final = "edge"
PASSWORD_VARIABLE: Final = "OUTPOST_RELEASE_KEY_PASSWORD"  # noqa: S105 - the variable's name
"""The release key's password, when its PEM is encrypted."""
_WHEEL_NAME: Final = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")
_PIP_TIMEOUT_S: Final = 1800.0
NOT_SOURCE: Final = shutil.ignore_patterns(
    ".git", ".venv", ".cache", ".*_cache", ".hypothesis", "__pycache__", "build", "dist", "*.egg-info", "*.db*",
    "outpost-edge-state", "node_modules", "tests",
)  # fmt: skip
"""What a source tree holds that is no part of Outpost's wheel: environments, caches, build leftovers."""


class ReleaseBuildError(Exception):
    """A release cannot be built; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class AgentBuild:
    """What to build an agent release from."""

    out: Path
    source: Path | None = None
    """Outpost's source tree (with pyproject.toml); None: ``wheel`` must be given."""
    wheel: Path | None = None
    """Outpost's wheel, already built (an install without the source)."""
    extras: str = DEFAULT_EXTRAS
    platforms: tuple[str, ...] = ()
    python_version: str | None = None
    find_links: tuple[Path, ...] = ()
    """Directories of wheels to take dependencies from before any index (an offline build)."""
    notes: str = ""


def load_release_key(path: Path, password: str | None) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseBuildError(f"cannot read the release key {path}: {exc.strerror}") from exc
    try:
        return load_private_key(data, password.encode() if password else None)
    except SigningKeyError as exc:
        raise ReleaseBuildError(f"{path} is not a usable Ed25519 release key: {exc}") from exc


def write_release(directory: Path, manifest: ReleaseManifest, key: Ed25519PrivateKey) -> SignedRelease:
    """Sign ``manifest`` and write it as ``directory``/release.json (atomically: a reader never sees half)."""
    signed = sign_release(key, manifest)
    target = directory / RELEASE_FILE
    partial = target.with_name(f".{RELEASE_FILE}.partial")
    partial.write_bytes(signed.dump())
    os.replace(partial, target)
    return signed


def _pip(args: Sequence[str], progress: Callable[[str], None]) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    progress(f"  $ pip {' '.join(args)}")
    try:
        done = subprocess.run(  # noqa: S603 - this Python's pip, our arguments
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ReleaseBuildError(f"pip {args[0]} took longer than {_PIP_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        errors = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("ERROR")]
        last = errors[-1] if errors else (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ReleaseBuildError(f"pip {args[0]} failed: {last[:400]}")


_RELEASE_ENTRIES: Final = frozenset({RELEASE_FILE, CONSTRAINTS, WHEELS, f".{RELEASE_FILE}.partial"})
"""What a release directory (or a build that failed half-way) holds: all a rebuild may remove."""


def _empty_out(out: Path) -> None:
    """Make ``out`` ready for a new build: remove an earlier release there, refuse anything else."""
    if out.exists() and not out.is_dir():
        raise ReleaseBuildError(f"{out} is a file: --out names the directory to build the release in")
    if not out.exists():
        return
    others = sorted(entry.name for entry in out.iterdir() if entry.name not in _RELEASE_ENTRIES)
    if others:
        raise ReleaseBuildError(f"{out} holds more than a release ({', '.join(others[:3])}): choose another --out")
    shutil.rmtree(out)


def _outpost_wheel(build: AgentBuild, wheels: Path, progress: Callable[[str], None]) -> Path:
    if build.wheel is not None:
        if not build.wheel.is_file():
            raise ReleaseBuildError(f"no wheel at {build.wheel}")
        return Path(shutil.copy2(build.wheel, wheels / build.wheel.name))
    if build.source is None or not (build.source / "pyproject.toml").is_file():
        raise ReleaseBuildError(
            f"{build.source or 'this install'} is no Outpost source tree (no pyproject.toml): pass --source or --wheel"
        )
    progress(f"building Outpost's wheel from {build.source}")
    with tempfile.TemporaryDirectory(prefix="outpost-wheel-") as scratch:
        # From a copy without build leftovers: setuptools packs whatever an earlier build left in build/lib,
        # a module since removed included.
        source = Path(scratch) / "source"
        shutil.copytree(build.source, source, ignore=NOT_SOURCE)
        _pip(["wheel", "--no-deps", "-q", "-w", scratch, str(source)], progress)
        built = sorted(Path(scratch).glob(f"{DISTRIBUTION}-*.whl"))
        if len(built) != 1:
            raise ReleaseBuildError(f"pip wheel made {len(built)} Outpost wheels, expected one")
        return Path(shutil.move(str(built[0]), wheels / built[0].name))


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    """The distribution name (normalised, PEP 503) and version a wheel's file name gives."""
    found = _WHEEL_NAME.match(wheel.name)
    if found is None:
        raise ReleaseBuildError(f"{wheel.name} is not a wheel's file name")
    return re.sub(r"[-_.]+", "-", found.group("name")).lower(), found.group("version")


def build_agent_release(
    build: AgentBuild, key: Ed25519PrivateKey, progress: Callable[[str], None], now_ms: int | None = None
) -> SignedRelease:
    """Make the agent release ``build`` describes in ``build.out`` (emptied first) and sign it."""
    if build.wheel is not None and build.wheel.resolve().is_relative_to(build.out.resolve()):
        raise ReleaseBuildError(f"--wheel {build.wheel} is inside --out {build.out}, which the build empties first")
    _empty_out(build.out)
    wheels = build.out / WHEELS
    wheels.mkdir(parents=True)
    own = _outpost_wheel(build, wheels, progress)
    name, version = wheel_name_version(own)
    if name != DISTRIBUTION or not RELEASE_VERSION_RE.fullmatch(version):
        raise ReleaseBuildError(f"{own.name} is not an Outpost wheel with a usable version")
    requirement = f"{DISTRIBUTION}[{build.extras}]=={version}" if build.extras else f"{DISTRIBUTION}=={version}"
    progress(f"collecting the wheels {requirement} needs")
    download = ["download", "-q", "-d", str(wheels), "--find-links", str(wheels), "--only-binary", ":all:"]
    for links in build.find_links:
        download += ["--find-links", str(links)]
    for platform in build.platforms:
        download += ["--platform", platform]
    if build.python_version is not None:
        download += ["--python-version", build.python_version]
    if build.platforms or build.python_version is not None:
        download += ["--implementation", "cp"]
    _pip([*download, requirement], progress)
    pins = sorted(wheel_name_version(wheel) for wheel in wheels.glob("*.whl"))
    duplicated = sorted({n for n, _ in pins if sum(1 for other, _ in pins if other == n) > 1})
    if duplicated:
        raise ReleaseBuildError(f"two versions of {', '.join(duplicated)} in the bundle: start from an empty --out")
    (build.out / CONSTRAINTS).write_text("".join(f"{n}=={v}\n" for n, v in pins), encoding="utf-8")
    paths = [CONSTRAINTS, *sorted(f"{WHEELS}/{wheel.name}" for wheel in wheels.glob("*.whl"))]
    progress(f"hashing {len(paths)} files")
    try:
        manifest = ReleaseManifest(
            kind=ReleaseKind.AGENT,
            version=version,
            created_ms=now_ms if now_ms is not None else int(time.time() * 1000),
            install=requirement,
            constraints=CONSTRAINTS,
            platforms=list(build.platforms),
            notes=build.notes,
            files=describe(build.out, paths),
        )
    except (ReleaseError, ValueError) as exc:
        raise ReleaseBuildError(f"cannot describe the release: {exc}") from exc
    return write_release(build.out, manifest, key)
