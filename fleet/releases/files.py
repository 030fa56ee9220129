"""A release's files on the fleet's disk: ``<directory>/<kind>/<version>/<path>``.

An upload streams into a temporary file under ``<directory>/.incoming`` while it is hashed, and is moved into
place (fsynced, then renamed) only once it has exactly the size and SHA-256 the signed manifest gives, so a
file in a release's directory is always one the release key vouched for. Disk work runs on a worker thread in
chunks of at least :data:`WRITE_CHUNK` bytes; the event loop never waits on the disk.
"""

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Final

from fleet.errors import InvalidRequestError
from protocol.releases import RELEASE_FILE, ReleaseFile, is_release_path

WRITE_CHUNK: Final = 1024 * 1024
_INCOMING: Final = ".incoming"


class ReleaseFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def release_dir(self, kind: str, version: str) -> Path:
        return self.directory / kind / version

    def path_of(self, kind: str, version: str, path: str) -> Path:
        """Where file ``path`` of a release is; ``path`` must be a release path (no ``..``, nothing absolute)."""
        if not is_release_path(path) and path != RELEASE_FILE:
            raise InvalidRequestError(f"{path!r} is no release file's path")
        return self.release_dir(kind, version) / path

    def present(self, kind: str, version: str, expected: ReleaseFile) -> bool:
        """Whether ``expected`` is in place (a file there has been checked on its way in)."""
        try:
            return self.path_of(kind, version, expected.path).stat().st_size == expected.size
        except OSError:
            return False

    async def write_signed(self, kind: str, version: str, data: bytes) -> None:
        await asyncio.to_thread(_write_atomically, self.path_of(kind, version, RELEASE_FILE), data)

    async def receive(self, kind: str, version: str, expected: ReleaseFile, chunks: AsyncIterator[bytes]) -> None:
        """Take ``expected`` from ``chunks`` into place, or raise InvalidRequestError if it is not as signed."""
        incoming = self.directory / _INCOMING
        await asyncio.to_thread(incoming.mkdir, parents=True, exist_ok=True)
        scratch = incoming / f"{uuid.uuid4().hex}.part"
        try:
            size, sha256 = await self._stream(scratch, expected, chunks)
            if size != expected.size or sha256 != expected.sha256:
                raise InvalidRequestError(
                    f"{expected.path} is not the file the release manifest signs ({size} bytes, sha256 "
                    f"{sha256[:12]}…; expected {expected.size} bytes, {expected.sha256[:12]}…)"
                )
            await asyncio.to_thread(_move_into_place, scratch, self.path_of(kind, version, expected.path))
        finally:
            await asyncio.to_thread(scratch.unlink, missing_ok=True)

    @staticmethod
    async def _stream(scratch: Path, expected: ReleaseFile, chunks: AsyncIterator[bytes]) -> tuple[int, str]:
        """Write ``chunks`` to ``scratch`` (synced); their size and SHA-256. Refused once past the expected size."""
        digest = hashlib.sha256()
        size = 0
        file = await asyncio.to_thread(scratch.open, "wb")
        try:
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > expected.size:
                    raise InvalidRequestError(
                        f"{expected.path} is larger than the {expected.size} bytes the release manifest gives"
                    )
                digest.update(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_CHUNK:
                    await asyncio.to_thread(_write_all, file, pending)
                    pending, pending_size = [], 0
            await asyncio.to_thread(_write_all, file, pending, sync=True)
        finally:
            await asyncio.to_thread(file.close)
        return size, digest.hexdigest()

    async def remove(self, kind: str, version: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.release_dir(kind, version), True)


def _write_all(file: BinaryIO, chunks: list[bytes], *, sync: bool = False) -> None:
    for chunk in chunks:
        file.write(chunk)
    if sync:
        file.flush()
        os.fsync(file.fileno())


def _move_into_place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    _sync_directory(target.parent)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    with partial.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    _move_into_place(partial, target)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
