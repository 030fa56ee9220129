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

The gateway carries no HTTP client library (see the import contracts): each request runs on a worker thread with
the standard library's ``urllib``, redirects refused, reading in chunks and stopping at the next chunk once the
download is cancelled.
"""

import asyncio
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import BinaryIO, Final, TypeVar
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge import AGENT_VERSION
from edge.durable_file import sync_directory
from edge.errors import UpdateRefusedError, UpdateUnavailableError
from protocol.errors import ReleaseError
from protocol.gateway_requests import authorization
from protocol.reconnect import Backoff
from protocol.releases import (
    MAX_RELEASE_FILE_JSON_BYTES,
    RELEASE_FILE,
    ReleaseFile,
    SignedRelease,
    file_sha256,
    verify_release,
)
from protocol.updates import ReleaseKind

logger = logging.getLogger(__name__)

READ_CHUNK: Final = 256 * 1024
PART_SUFFIX: Final = ".part"
MAX_CORRUPT_ARRIVALS: Final = 3
"""A file that arrives whole but not as signed this often is not fetched again: the fleet's copy is damaged."""
_REFUSED: Final = frozenset({400, 401, 403, 404, 410, 422})
_T = TypeVar("_T")


class _TransientAnswer(Exception):
    """No answer, or not the one asked for (a 5xx, a 429, a file that arrived corrupt): try again."""


class _Cancelled(Exception):
    """The download was cancelled: the worker thread stops at its next chunk."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


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


class ReleaseDownload:
    def __init__(
        self,
        fleet: FleetEndpoint,
        trusted_keys: Sequence[Ed25519PublicKey],
        *,
        timeout_s: float = 10.0,
        max_idle_attempts: int = 8,
        backoff: Backoff | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._fleet = fleet
        self._trusted = list(trusted_keys)
        self._timeout_s = timeout_s
        self._max_idle_attempts = max_idle_attempts
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._clock_ms = clock_ms
        self._received = 0
        """Bytes received in this run, to tell an attempt that made progress from one that did not."""
        self._stop = threading.Event()
        self._corrupt: dict[str, int] = {}
        self._opener: urllib.request.OpenerDirector | None = None

    async def fetch(
        self,
        kind: ReleaseKind,
        version: str,
        into: Path,
        progress: Callable[[DownloadProgress], None] | None = None,
    ) -> SignedRelease:
        """Download release ``kind`` ``version`` into directory ``into`` (kept across attempts: what is there is
        resumed); return its verified manifest once every file is in place as signed."""
        self._opener = await asyncio.to_thread(self._build_opener)
        base = f"/releases/{kind.value}/{quote(version, safe='')}"
        release = await self._retrying(partial(self._manifest, f"{base}/{RELEASE_FILE}", kind, version))
        await asyncio.to_thread(_write_release_file, into, release)
        manifest = release.manifest
        done_bytes = 0
        for index, expected in enumerate(manifest.files):
            await self._retrying(partial(self._file, f"{base}/files/{expected.path}", into, expected))
            done_bytes += expected.size
            if progress is not None:
                progress(DownloadProgress(index + 1, len(manifest.files), done_bytes, manifest.total_size))
        logger.info("release %s %s downloaded into %s (%d files)", kind, version, into, len(manifest.files))
        return release

    def _build_opener(self) -> urllib.request.OpenerDirector:
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if self._fleet.url.startswith("https:"):
            ca_file = self._fleet.ca_file
            try:
                context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
            except (OSError, ssl.SSLError) as exc:
                raise UpdateRefusedError(f"cannot load the fleet's CA {ca_file}: {exc}") from exc
            handlers.append(urllib.request.HTTPSHandler(context=context))
        return urllib.request.build_opener(*handlers)

    # --- retrying ----------------------------------------------------------------------------

    async def _retrying(self, blocking: Callable[[], _T]) -> _T:
        """``blocking()`` on a worker thread, retried on transient failures while attempts keep making progress."""
        idle = 0
        while True:
            received = self._received
            try:
                return await self._on_thread(blocking)
            except _TransientAnswer as exc:
                if self._received > received:
                    idle = 0
                    self._backoff.reset()
                idle += 1
                if idle >= self._max_idle_attempts:
                    raise UpdateUnavailableError(
                        f"the download from {self._fleet.url} made no progress in {idle} attempts ({exc})"
                    ) from exc
                delay = self._backoff.next_delay()
                logger.warning("release download interrupted (%s); resuming in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            else:
                self._backoff.reset()

    async def _on_thread(self, blocking: Callable[[], _T]) -> _T:
        self._stop.clear()
        try:
            return await asyncio.to_thread(blocking)
        except asyncio.CancelledError:
            self._stop.set()  # the thread gives up at its next chunk (or its socket's timeout)
            raise

    # --- one request on the worker thread ------------------------------------------------------

    def _open(self, path: str, headers: dict[str, str] | None = None) -> HTTPResponse:
        """GET ``path`` signed with the gateway's key; the open response (2xx or 206), or what to do instead."""
        url = self._fleet.url.rstrip("/") + path
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")  # as urllib sends it
        key, gateway_id = self._fleet.identity_key, self._fleet.gateway_id
        request = urllib.request.Request(  # noqa: S310 - the fleet's URL, http(s) by the settings' check
            url,
            headers={
                **(headers or {}),
                "Authorization": authorization(key, gateway_id, "GET", target, self._clock_ms()),
                "User-Agent": f"outpost-gateway/{AGENT_VERSION}",
            },
        )
        assert self._opener is not None
        try:
            response: HTTPResponse = self._opener.open(request, timeout=self._timeout_s)
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(300).decode("utf-8", "replace")
            except (OSError, HTTPException):
                detail = ""
            if exc.code in _REFUSED:
                raise UpdateRefusedError(f"the fleet refused {path}: {exc.code} {detail}") from None
            if exc.code == 416:
                raise _RangeRefused(f"the fleet cannot resume {path} there") from None
            raise _TransientAnswer(f"the fleet answered {exc.code} for {path}") from None
        except urllib.error.URLError as exc:
            raise _TransientAnswer(f"cannot reach the fleet: {exc.reason}") from None
        except (OSError, HTTPException) as exc:
            raise _TransientAnswer(f"{type(exc).__name__}: {exc}") from None
        return response

    def _read(self, response: HTTPResponse, size: int) -> bytes:
        if self._stop.is_set():
            raise _Cancelled
        try:
            chunk = response.read(size)
        except (OSError, HTTPException) as exc:
            raise _TransientAnswer(f"the connection broke: {type(exc).__name__}: {exc}") from None
        self._received += len(chunk)
        return chunk

    def _manifest(self, path: str, kind: ReleaseKind, version: str) -> SignedRelease:
        try:
            response = self._open(path)
        except _RangeRefused as exc:  # no range was asked: the fleet answered nonsense
            raise _TransientAnswer(str(exc)) from None
        with response:
            body = bytearray()
            while chunk := self._read(response, READ_CHUNK):
                body += chunk
                if len(body) > MAX_RELEASE_FILE_JSON_BYTES:
                    raise UpdateRefusedError(f"{path} is larger than {MAX_RELEASE_FILE_JSON_BYTES} bytes")
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

    def _file(self, path: str, into: Path, expected: ReleaseFile) -> None:
        final = into / expected.path
        if _is_whole(final, expected):
            return
        part = final.with_name(final.name + PART_SUFFIX)
        offset = _resumable_size(part, expected.size)
        if offset < expected.size:
            try:
                self._receive(path, part, offset, expected)
            except _RangeRefused as exc:
                part.unlink(missing_ok=True)
                raise _TransientAnswer(f"{exc}; starting {expected.path} over") from None
        arrived = _resumable_size(part, expected.size)
        if arrived < expected.size:  # the connection ended early: what came is kept, the rest comes next
            raise _TransientAnswer(f"{expected.path} was cut off at byte {arrived} of {expected.size}")
        if not _is_whole(part, expected):
            part.unlink(missing_ok=True)
            self._corrupt[expected.path] = self._corrupt.get(expected.path, 0) + 1
            if self._corrupt[expected.path] >= MAX_CORRUPT_ARRIVALS:
                raise UpdateRefusedError(
                    f"{expected.path} arrived {MAX_CORRUPT_ARRIVALS} times not as the manifest signs it: the fleet's "
                    "copy is damaged"
                )
            raise _TransientAnswer(f"{expected.path} arrived corrupt (not as the manifest signs it); fetching it again")
        _move_into_place(part, final)

    def _receive(self, path: str, part: Path, offset: int, expected: ReleaseFile) -> None:
        """Append the rest of ``expected`` from ``offset`` to ``part`` (from 0 when the fleet sends it whole)."""
        with self._open(path, {"Range": f"bytes={offset}-"} if offset else None) as response:
            if response.status == 206 and not (response.headers.get("Content-Range") or "").startswith(
                f"bytes {offset}-"
            ):
                raise _RangeRefused(f"the fleet sent {expected.path} from another byte than {offset}")
            if response.status != 206:
                offset = 0  # the whole file, from its first byte
            with _open_at(part, offset) as file:
                size = offset
                try:
                    while chunk := self._read(response, READ_CHUNK):
                        size += len(chunk)
                        if size > expected.size:
                            raise _TransientAnswer(f"{expected.path} is longer than the manifest says")
                        file.write(chunk)
                finally:  # what arrived is kept for the next try
                    file.flush()
                    os.fsync(file.fileno())


class _RangeRefused(Exception):
    """The fleet cannot resume a file where the part on disk ends."""


def _write_release_file(into: Path, release: SignedRelease) -> None:
    into.mkdir(parents=True, exist_ok=True)
    (into / RELEASE_FILE).write_bytes(release.dump())


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


def _move_into_place(source: Path, target: Path) -> None:
    os.replace(source, target)
    sync_directory(target.parent)
