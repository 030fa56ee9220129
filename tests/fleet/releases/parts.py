"""A release key and small signed releases for the fleet's release tests."""

from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.releases.files import ReleaseFiles
from fleet.releases.store import ReleaseStore
from protocol.releases import ReleaseManifest, SignedRelease, describe, sign_release
from protocol.updates import ReleaseKind
from tests.fleet.helpers import FakeClock

RELEASE_KEY: Final = Ed25519PrivateKey.generate()
"""The release key the tests' fleets trust."""


def release_store(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, directory: Path = Path("/nonexistent/releases")
) -> ReleaseStore:
    """A store trusting :data:`RELEASE_KEY`; its default directory cannot be written (for tests that upload nothing)."""
    return ReleaseStore(sessions, clock, ReleaseFiles(directory), [RELEASE_KEY.public_key()], max_file_bytes=64 << 20)


def make_release(
    directory: Path,
    files: dict[str, bytes],
    *,
    version: str = "1.2.0",
    kind: ReleaseKind = ReleaseKind.AGENT,
    key: Ed25519PrivateKey = RELEASE_KEY,
) -> SignedRelease:
    """Write ``files`` under ``directory`` and sign a manifest of them (not written: the caller sends it)."""
    for path, data in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(data)
    manifest = ReleaseManifest(
        kind=kind, version=version, created_ms=1_700_000_000_000, files=describe(directory, sorted(files))
    )
    return sign_release(key, manifest)
