"""Fetching a release from the fleet over HTTPS, resumably, trusting nothing that the release key did not sign.

The signed manifest (``release.json``) comes first and is checked against the release keys the gateway trusts
before a byte of anything else is fetched; then each file it lists is downloaded into ``<path>.part`` and moved
to ``<path>`` only once it has the size and SHA-256 the manifest gives. A download cut off (a 4G link dropping,
the agent restarting, a power cut) resumes where its ``.part`` file stops, with an HTTP range request; a file
already in place and whole is not fetched again. Every request is signed with the gateway's own key
(:mod:`protocol.gateway_requests`).

Transient failures (no connection, a timeout, a 5xx or 429 answer, a file that arrived corrupt) are retried with
backoff, for as long as each attempt makes progress and at most ``max_idle_attempts`` in a row without; a refusal
(401, 403, 404) or a release that does not verify stops at once with :class:`UpdateRefusedError`.
"""

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Final, TypeVar
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import UpdateRefusedError, UpdateUnavailableError
from protocol.errors import ReleaseError
from protocol.gateway_requests import authorization
from protocol.reconnect import Backoff
from protocol.releases import (
    MAX_RELEASE_FILE_JSON_BYTES,
    RELEASE_FILE,
    ReleaseFile,
    ReleaseKind,
    SignedRelease,
    file_sha256,
    verify_release,
)

logger = logging.getLogger(__name__)

WRITE_CHUNK: Final = 1024 * 1024
PART_SUFFIX: Final = ".part"
_REFUSED: Final = frozenset({400, 401, 403, 404, 410, 422})
_T = TypeVar("_T")


class _TransientAnswer(Exception):
    """The fleet answered, but not with what was asked (a 5xx, a 429, a file that arrived corrupt): try again."""


@dataclass(frozen=True, slots=True)
class FleetEndpoint:
    """How this gateway reaches the fleet's API: its URL, its own identity, and the CA to trust."""

    url: str
    gateway_id: str
    identity_key: Ed25519PrivateKey = field(repr=False)
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


@dataclass(slots=True)
class _Transfer:
    """Bytes received in this run, to tell an attempt that made progress from one that did not."""

    received: int = 0


class ReleaseDownload:
    def __init__(
        self,
        fleet: FleetEndpoint,
        trusted_keys: Sequence[Ed25519PublicKey],
        *,
        timeout_s: float = 30.0,
        max_idle_attempts: int = 8,
        backoff: Backoff | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._fleet = fleet
        self._trusted = list(trusted_keys)
        self._timeout_s = timeout_s
        self._max_idle_attempts = max_idle_attempts
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._clock_ms = clock_ms
        self._transport = transport
        self._transfer = _Transfer()

    async def fetch(
        self,
        kind: ReleaseKind,
        version: str,
        into: Path,
        progress: Callable[[DownloadProgress], None] | None = None,
    ) -> SignedRelease:
        """Download release ``kind`` ``version`` into directory ``into`` (kept across attempts: what is there is
        resumed); return its verified manifest once every file is in place as signed."""
        base = f"/releases/{kind.value}/{quote(version, safe='')}"
        ca_file = self._fleet.ca_file
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = await asyncio.to_thread(ssl.create_default_context, cafile=str(ca_file))
        timeout = httpx.Timeout(self._timeout_s)
        async with httpx.AsyncClient(
            base_url=self._fleet.url.rstrip("/"), verify=verify, timeout=timeout, transport=self._transport
        ) as client:
            release = await self._retrying(lambda: self._manifest(client, f"{base}/{RELEASE_FILE}", kind, version))
            await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread((into / RELEASE_FILE).write_bytes, release.dump())
            manifest = release.manifest
            done_bytes = 0
            for index, expected in enumerate(manifest.files):
                await self._retrying(partial(self._file, client, f"{base}/files/{expected.path}", into, expected))
                done_bytes += expected.size
                if progress is not None:
                    progress(DownloadProgress(index + 1, len(manifest.files), done_bytes, manifest.total_size))
        logger.info("release %s %s downloaded into %s (%d files)", kind, version, into, len(manifest.files))
        return release

    # --- one attempt each --------------------------------------------------------------------

    async def _retrying(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """``attempt()``, retried on transient failures while attempts keep making progress."""
        idle = 0
        while True:
            received = self._transfer.received
            try:
                result = await attempt()
            except (httpx.TransportError, _TransientAnswer) as exc:
                if self._transfer.received > received:
                    idle = 0
                    self._backoff.reset()
                idle += 1
                reason = f"{type(exc).__name__}: {exc}"[:300]
                if idle >= self._max_idle_attempts:
                    raise UpdateUnavailableError(
                        f"the download from {self._fleet.url} made no progress in {idle} attempts ({reason})"
                    ) from exc
                delay = self._backoff.next_delay()
                logger.warning("release download interrupted (%s); resuming in %.1f s", reason, delay)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            return result

    async def _send(
        self, client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET ``path`` signed with the gateway's key, streamed (the caller reads and closes it)."""
        request = client.build_request("GET", path, headers=headers)
        target = request.url.raw_path.decode("ascii")  # the path and query as they travel (a prefix included)
        key, gateway_id = self._fleet.identity_key, self._fleet.gateway_id
        request.headers["Authorization"] = authorization(key, gateway_id, "GET", target, self._clock_ms())
        response = await client.send(request, stream=True)
        if response.status_code in _REFUSED:
            detail = (await response.aread())[:300].decode("utf-8", "replace")
            await response.aclose()
            raise UpdateRefusedError(f"the fleet refused {path}: {response.status_code} {detail}")
        if response.status_code >= 300 and response.status_code != 416:
            await response.aclose()
            raise _TransientAnswer(f"the fleet answered {response.status_code} for {path}")
        return response

    async def _manifest(self, client: httpx.AsyncClient, path: str, kind: ReleaseKind, version: str) -> SignedRelease:
        response = await self._send(client, path)
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                self._transfer.received += len(chunk)
                if len(body) > MAX_RELEASE_FILE_JSON_BYTES:
                    raise UpdateRefusedError(f"{path} is larger than {MAX_RELEASE_FILE_JSON_BYTES} bytes")
        finally:
            await response.aclose()
        try:
            release = SignedRelease.parse(bytes(body), path)
            verify_release(self._trusted, release)
        except ReleaseError as exc:
            raise UpdateRefusedError(str(exc)) from exc
        if release.manifest.kind != kind or release.manifest.version != version:
            raise UpdateRefusedError(
                f"asked for {kind} {version}, the fleet sent {release.manifest.kind} {release.manifest.version}"
            )
        return release

    async def _file(self, client: httpx.AsyncClient, path: str, into: Path, expected: ReleaseFile) -> None:
        final = into / expected.path
        if await asyncio.to_thread(_is_whole, final, expected):
            return
        part = final.with_name(final.name + PART_SUFFIX)
        offset = await asyncio.to_thread(_resumable_size, part, expected.size)
        if offset < expected.size:
            await self._receive(client, path, part, offset, expected)
        if not await asyncio.to_thread(_is_whole, part, expected):
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise _TransientAnswer(f"{expected.path} arrived corrupt (not as the manifest signs it); fetching it again")
        await asyncio.to_thread(_move_into_place, part, final)

    async def _receive(
        self, client: httpx.AsyncClient, path: str, part: Path, offset: int, expected: ReleaseFile
    ) -> None:
        """Append the rest of ``expected`` from ``offset`` to ``part`` (from 0 when the fleet sends it whole)."""
        response = await self._send(client, path, {"Range": f"bytes={offset}-"} if offset else None)
        try:
            if response.status_code == 416 or (
                response.status_code == 206
                and not response.headers.get("content-range", "").startswith(f"bytes {offset}-")
            ):
                await asyncio.to_thread(part.unlink, missing_ok=True)
                raise _TransientAnswer(f"the fleet cannot resume {expected.path} at byte {offset}; starting it over")
            if response.status_code != 206:
                offset = 0  # the whole file, from its first byte
            file = await asyncio.to_thread(_open_at, part, offset)
            try:
                await self._write(response, file, offset, expected)
            finally:
                await asyncio.to_thread(file.close)
        finally:
            await response.aclose()

    async def _write(self, response: httpx.Response, file: BinaryIO, offset: int, expected: ReleaseFile) -> None:
        size = offset
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                self._transfer.received += len(chunk)
                if size > expected.size:
                    raise _TransientAnswer(f"{expected.path} is longer than the manifest says")
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_CHUNK:
                    await asyncio.to_thread(_write_all, file, pending)
                    pending, pending_size = [], 0
        finally:
            await asyncio.to_thread(_write_all, file, pending, sync=True)  # what arrived is kept for the next try


def _is_whole(path: Path, expected: ReleaseFile) -> bool:
    try:
        if path.stat().st_size != expected.size:
            return False
        return file_sha256(path, expected.size) == (expected.size, expected.sha256)
    except (OSError, ReleaseError):
        return False


def _resumable_size(part: Path, limit: int) -> int:
    """How much of a file an earlier try left in ``part`` (0 if nothing, or more than the file can be)."""
    try:
        size = part.stat().st_size
    except FileNotFoundError:
        part.parent.mkdir(parents=True, exist_ok=True)
        return 0
    if size > limit:
        part.unlink()
        return 0
    return size


def _open_at(part: Path, offset: int) -> BinaryIO:
    file = part.open("r+b" if offset and part.exists() else "wb")
    file.truncate(offset)
    file.seek(offset)
    return file


def _write_all(file: BinaryIO, chunks: list[bytes], *, sync: bool = False) -> None:
    for chunk in chunks:
        file.write(chunk)
    if sync:
        file.flush()
        os.fsync(file.fileno())


def _move_into_place(source: Path, target: Path) -> None:
    os.replace(source, target)
    descriptor = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
