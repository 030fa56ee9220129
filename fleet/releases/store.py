"""The releases the fleet keeps: a row per release (its signed manifest, who uploaded it, whether it is whole)
and its files on disk (:mod:`fleet.releases.files`).

An upload is two steps, so no request body is ever larger than one file: ``register`` takes the signed
manifest (``release.json``), checked against the release keys the fleet trusts; then each file is sent on its
own and taken only if it hashes as the manifest says. The release is ready (served to gateways, usable by
jobs) once every file is in place. Registering the same release again is harmless (an interrupted upload
resumes: the answer lists what is still missing); a different manifest under the same kind and version is
refused. Every registration and removal is audited.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.roles import Actor
from fleet.db.schema import ReleaseRow
from fleet.errors import ConflictError, InvalidRequestError, NotFoundError
from fleet.releases.files import ReleaseFiles
from fleet.releases.keys import trusted_release_keys
from fleet.settings import ReleaseSettings
from fleet.sites.records import Records
from protocol.errors import ReleaseError
from protocol.releases import SignedRelease, check_files, verify_release
from protocol.updates import ReleaseKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredRelease:
    row: ReleaseRow
    release: SignedRelease
    missing: list[str]
    """Files of the manifest not yet uploaded (empty once the release is ready)."""

    @property
    def ready(self) -> bool:
        return self.row.ready_ms is not None


class ReleaseStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        files: ReleaseFiles,
        trusted: Sequence[Ed25519PublicKey],
        *,
        max_file_bytes: int,
    ) -> None:
        self._records = Records(sessions, clock)
        self._clock = clock
        self.files = files
        self._trusted = list(trusted)
        self.max_file_bytes = max_file_bytes
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @classmethod
    def from_settings(
        cls, settings: ReleaseSettings, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]
    ) -> "ReleaseStore":
        return cls(
            sessions,
            clock,
            ReleaseFiles(settings.directory),
            trusted_release_keys(settings.trusted_keys_file),
            max_file_bytes=settings.max_file_bytes,
        )

    # --- reading ------------------------------------------------------------------------------

    async def get(self, kind: ReleaseKind, version: str) -> StoredRelease:
        async with self._records.read(f"read release {kind} {version}") as session:
            row = await session.get(ReleaseRow, (kind.value, version))
        if row is None:
            raise NotFoundError(f"no {kind} release {version!r}")
        return self._stored(row)

    async def list(self, kind: ReleaseKind | None = None) -> list[StoredRelease]:
        query = select(ReleaseRow).order_by(ReleaseRow.kind, ReleaseRow.created_ms.desc())
        if kind is not None:
            query = query.where(ReleaseRow.kind == kind.value)
        return [self._stored(row) for row in await self._records.all(query, "list releases")]

    async def served_file(self, kind: ReleaseKind, version: str, path: str) -> Path:
        """The file ``path`` of a ready release, one its manifest lists."""
        stored = await self.get(kind, version)
        if not stored.ready:
            raise NotFoundError(f"{kind} release {version} is still being uploaded")
        if stored.release.manifest.file(path) is None:
            raise NotFoundError(f"{kind} release {version} has no file {path!r}")
        return self.files.path_of(kind.value, version, path)

    def _stored(self, row: ReleaseRow) -> StoredRelease:
        release = SignedRelease.parse(row.signed.encode("utf-8"))
        missing = (
            []
            if row.ready_ms is not None
            else [f.path for f in release.manifest.files if not self.files.present(row.kind, row.version, f)]
        )
        return StoredRelease(row, release, missing)

    # --- uploading ----------------------------------------------------------------------------

    def _one_at_a_time(self, kind: str, version: str) -> asyncio.Lock:
        """The lock a release's registration and removal take, so neither clears the other's files (the fleet's
        API runs in one process)."""
        return self._locks.setdefault((kind, version), asyncio.Lock())

    async def register(self, actor: Actor, release: SignedRelease) -> tuple[StoredRelease, bool]:
        """Take ``release``'s signed manifest (checked against the trusted keys): the release is then uploading
        (True: registered now), or unchanged if it was registered before with this very manifest (False)."""
        async with self._one_at_a_time(release.manifest.kind.value, release.manifest.version):
            return await self._register(actor, release)

    async def _register(self, actor: Actor, release: SignedRelease) -> tuple[StoredRelease, bool]:
        if not self._trusted:
            raise InvalidRequestError(
                "the fleet trusts no release key: set releases.trusted_keys_file to the release keys' public halves"
            )
        try:
            verify_release(self._trusted, release)
        except ReleaseError as exc:
            raise InvalidRequestError(str(exc)) from exc
        manifest = release.manifest
        too_large = [f.path for f in manifest.files if f.size > self.max_file_bytes]
        if too_large:
            raise InvalidRequestError(
                f"{', '.join(too_large[:3])} larger than releases.max_file_bytes ({self.max_file_bytes} bytes)"
            )
        signed = release.dump().decode("utf-8")
        kind, version = manifest.kind.value, manifest.version
        async with self._records.read(f"read release {kind} {version}") as session:
            existing = await session.get(ReleaseRow, (kind, version))
        if existing is not None:
            return self._same(existing, release), False
        # Whatever an earlier release of this version left on disk goes, and the manifest is in place before the
        # row that makes it visible: a crash between the two leaves a stray file, never a release without it.
        await self.files.remove(kind, version)
        await self.files.write_signed(kind, version, signed.encode("utf-8"))
        async with self._records.write(f"register release {kind} {version}") as session:
            existing = await session.get(ReleaseRow, (kind, version))
            if existing is not None:  # registered meanwhile by another call
                return self._same(existing, release), False
            now = self._clock()
            row = ReleaseRow(
                kind=kind,
                version=version,
                key_id=release.key_id,
                signed=signed,
                file_count=len(manifest.files),
                total_size=manifest.total_size,
                created_ms=manifest.created_ms,
                uploaded_ms=now,
                uploaded_by=actor.name,
                ready_ms=None,
            )
            session.add(row)
            record(session, actor, Change("release.upload", "release", f"{kind}/{version}", None, _audited(row)), now)
        logger.info("release %s %s registered by %s (%d files)", kind, version, actor.name, len(manifest.files))
        return await self._ready_if_whole(kind, version), True

    def _same(self, row: ReleaseRow, release: SignedRelease) -> StoredRelease:
        if SignedRelease.parse(row.signed.encode("utf-8")) != release:
            raise ConflictError(
                f"a different {row.kind} release {row.version} is stored: give the new one another version"
            )
        return self._stored(row)

    async def receive(self, kind: ReleaseKind, version: str, path: str, chunks: AsyncIterator[bytes]) -> StoredRelease:
        """Take file ``path`` of a registered release from ``chunks``; the release is ready once it is whole."""
        stored = await self.get(kind, version)
        expected = stored.release.manifest.file(path)
        if expected is None:
            raise NotFoundError(f"{kind} release {version} lists no file {path!r}")
        if not stored.ready:
            await self.files.receive(kind.value, version, expected, chunks)
        return await self._ready_if_whole(kind.value, version)

    async def _ready_if_whole(self, kind: str, version: str) -> StoredRelease:
        """The release, marked ready if every file is in place and hashes as signed (checked once, here: a file
        is moved in only after its own check, this one catches any that changed on disk since)."""
        stored = await self.get(ReleaseKind(kind), version)
        if stored.ready or stored.missing:
            return stored
        try:
            await asyncio.to_thread(check_files, self.files.release_dir(kind, version), stored.release.manifest)
        except ReleaseError as exc:
            logger.error("release %s %s is whole but not as signed (%s): its files are removed", kind, version, exc)
            await self.files.remove(kind, version)
            await self.files.write_signed(kind, version, stored.row.signed.encode("utf-8"))
            raise InvalidRequestError(f"release {kind} {version} is not as signed ({exc}): upload it again") from exc
        async with self._records.write(f"mark release {kind} {version} ready") as session:
            row = await session.get(ReleaseRow, (kind, version))
            if row is None:
                raise NotFoundError(f"no {kind} release {version!r}")
            if row.ready_ms is None:
                row.ready_ms = self._clock()
                logger.info("release %s %s is whole and ready", kind, version)
        return self._stored(row)

    async def delete(self, actor: Actor, kind: ReleaseKind, version: str) -> None:
        async with self._one_at_a_time(kind.value, version):
            await self._delete(actor, kind, version)

    async def _delete(self, actor: Actor, kind: ReleaseKind, version: str) -> None:
        async with self._records.write(f"remove release {kind} {version}") as session:
            row = await session.get(ReleaseRow, (kind.value, version))
            if row is None:
                raise NotFoundError(f"no {kind} release {version!r}")
            before = _audited(row)
            await session.delete(row)
            change = Change("release.delete", "release", f"{kind}/{version}", before, None)
            record(session, actor, change, self._clock())
        await self.files.remove(kind.value, version)


def _audited(row: ReleaseRow) -> dict[str, object] | None:
    """The row as the audit log keeps it: without the signed manifest (its hashes are in the files)."""
    found = snapshot(row)
    return None if found is None else {key: value for key, value in found.items() if key != "signed"}
