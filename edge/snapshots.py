"""Camera snapshots kept on the gateway for a retention period, to be fetched only by an audited command.

A snapshot is a downscaled JPEG that always fits one command response (``MAX_ATTACHMENT_BYTES``),
kept as two files named by a random id (uuid4 hex: not guessable, and no device, time or person in
the name), both only readable by the agent's user:

* ``{id}.jpg``, the image (OpenCV writes no EXIF or other metadata);
* ``{id}.json``, its sidecar: device, time, why it was kept, size and SHA-256 of the JPEG.

Each file is written to ``*.tmp``, fsynced and renamed, the JPEG first; the sidecar is renamed last
and deleted first, so it marks a complete snapshot. At start the store rebuilds its index from the
sidecars whose JPEG is there with the recorded size, and deletes what a power cut left behind
(``*.tmp`` files, a JPEG without sidecar, a sidecar without its JPEG). :meth:`SnapshotStore.read`
checks size and SHA-256 again, so a damaged or half-written file is never served.

:meth:`SnapshotStore.keep` runs in a camera's capture thread (JPEG encoding, two small fsynced writes,
at most once per camera every ``min_interval_s``); the other methods run from the event loop. The
index is guarded by a lock that is never held during encoding or file I/O. Every method blocks on
small file I/O (one file of at most 40 KB, a few unlinks): the event loop should call ``read`` and
``purge`` through :func:`asyncio.to_thread`.
"""

import builtins
import hashlib
import logging
import math
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.durable_file import sync_directory
from edge.errors import SnapshotError, SnapshotNotFoundError
from protocol.gateway_config import SnapshotPolicy
from protocol.identifiers import DeviceId, EpochMillis, is_identifier
from protocol.messages import MAX_ATTACHMENT_BYTES

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

SNAPSHOT_ID_PATTERN: Final = r"^[0-9a-f]{32}$"
"""A snapshot id: 32 lower-case hex digits (a uuid4). Anything else is refused before any file is touched."""
_SNAPSHOT_ID_RE: Final = re.compile(SNAPSHOT_ID_PATTERN)
REASON_MAX_CHARS: Final = 120
"""Longer reasons are cut, so a listing entry (id, time, device, reason) fits one wire text."""

_JPEG: Final = ".jpg"
_SIDECAR: Final = ".json"
_TMP: Final = ".tmp"
_QUALITY_STEP: Final = 20
_MIN_QUALITY: Final = 30
_MIN_WIDTH: Final = 80
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700


def is_snapshot_id(value: str) -> bool:
    """Whether ``value`` is a well-formed snapshot id (it may still be unknown)."""
    return _SNAPSHOT_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    id: str
    device_id: str
    ts: int
    """When the frame was read from the camera, epoch ms."""
    reason: str
    size_bytes: int
    """Size of the JPEG."""


class _Sidecar(BaseModel):
    """What a snapshot's ``.json`` file holds; a file that does not validate is treated as damaged."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    version: Literal[1] = 1
    device_id: DeviceId
    ts: EpochMillis
    reason: str = Field(max_length=REASON_MAX_CHARS)
    size_bytes: int = Field(gt=0, le=MAX_ATTACHMENT_BYTES)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class _Entry:
    info: SnapshotInfo
    sha256: str
    disk_bytes: int
    """JPEG and sidecar together: what counts against ``max_bytes``."""


def encode_jpeg(frame: "NDArray[np.uint8]", max_width: int, quality: int, limit: int = MAX_ATTACHMENT_BYTES) -> bytes:
    """``frame`` (BGR, or grey) as a JPEG at most ``max_width`` wide and ``limit`` bytes long.

    Starts at ``quality``; while the JPEG is too big it lowers the quality (down to 30), then the
    size. Raises SnapshotError for a frame that is not an 8-bit image or cannot be made to fit.
    """
    import cv2  # noqa: PLC0415 - OpenCV only on gateways that keep snapshots

    if frame.dtype.name != "uint8" or frame.ndim not in {2, 3} or (frame.ndim == 3 and frame.shape[2] != 3):
        raise SnapshotError(f"not an 8-bit BGR or grey image: shape {frame.shape}, {frame.dtype}")
    height, width = frame.shape[:2]
    if height == 0 or width == 0:
        raise SnapshotError("empty frame")
    target = min(width, max_width)
    while True:
        image: NDArray[Any] = frame
        if target != width:
            size = (target, max(1, round(height * target / width)))
            image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        encoded = b""
        for q in range(quality, _MIN_QUALITY - _QUALITY_STEP, -_QUALITY_STEP):
            ok, buffer = cv2.imencode(_JPEG, image, [cv2.IMWRITE_JPEG_QUALITY, max(q, _MIN_QUALITY)])
            if not ok:
                raise SnapshotError("OpenCV could not encode the frame as JPEG")
            encoded = buffer.tobytes()
            if len(encoded) <= limit:
                return encoded
        # Even the lowest quality is too big: shrink by the square root of the excess (area ~ bytes).
        shrink = min(0.9, max(0.5, math.sqrt(limit / len(encoded))))
        target = int(target * shrink)
        if target < _MIN_WIDTH:
            raise SnapshotError(f"the frame does not fit {limit} bytes even at {_MIN_WIDTH} px wide")


class SnapshotStore:
    """The gateway's snapshots in one directory: kept, listed, read and aged out under a :class:`SnapshotPolicy`."""

    def __init__(self, directory: Path, policy: SnapshotPolicy, clock: Callable[[], int]) -> None:
        """Open (or create) ``directory``, rebuild the index and purge; raises SnapshotError if unusable."""
        self._dir = directory
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._last_kept: dict[str, int] = {}
        self.write_failures = 0
        """Snapshots that could not be encoded or written (a full or failing SD card), since start."""
        try:
            self._dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            self._load()
        except OSError as exc:
            raise SnapshotError(f"cannot use the snapshot directory {directory}: {exc}") from exc
        self.purge()

    @property
    def policy(self) -> SnapshotPolicy:
        return self._policy

    def set_policy(self, policy: SnapshotPolicy) -> int:
        """Apply a new policy (a pushed config) and purge under it; returns how many snapshots went."""
        self._policy = policy
        return self.purge()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk (JPEGs and sidecars), the figure ``max_bytes`` bounds."""
        with self._lock:
            return sum(entry.disk_bytes for entry in self._entries.values())

    # --- keeping ----------------------------------------------------------------------------------

    def keep(self, device_id: str, frame: "NDArray[np.uint8]", ts: int, reason: str) -> SnapshotInfo | None:
        """Keep ``frame`` (read at ``ts``) from camera ``device_id`` as a snapshot, and say ``reason``.

        Returns None without doing any work when snapshots are disabled or this camera kept one less
        than ``min_interval_s`` before ``ts``. Never raises for a frame or disk problem (the camera's
        frame path must go on): it logs, counts ``write_failures`` and returns None.
        """
        if not is_identifier(device_id):
            raise ValueError(f"not a device id: {device_id[:80]!r}")
        policy = self._policy
        if not policy.enabled:
            return None
        with self._lock:
            last = self._last_kept.get(device_id)
            if last is not None and 0 <= ts - last < policy.min_interval_s * 1000:
                return None
            self._last_kept[device_id] = ts  # failed attempts count too: a broken disk is not retried per frame
        try:
            jpeg = encode_jpeg(frame, policy.max_width, policy.jpeg_quality)
            info = SnapshotInfo(uuid.uuid4().hex, device_id, ts, reason[:REASON_MAX_CHARS], len(jpeg))
            entry = self._write(info, jpeg)
        except (SnapshotError, OSError) as exc:
            with self._lock:
                self.write_failures += 1
            logger.error("snapshot of %s not kept: %s", device_id, exc)
            return None
        with self._lock:
            self._entries[info.id] = entry
        logger.debug("kept snapshot %s of %s (%d bytes, %s)", info.id, device_id, info.size_bytes, info.reason)
        self._purge(logging.DEBUG)  # once the budget is full, every snapshot kept evicts one: routine
        return info

    def _write(self, info: SnapshotInfo, jpeg: bytes) -> _Entry:
        sha256 = hashlib.sha256(jpeg).hexdigest()
        sidecar = _Sidecar(
            device_id=info.device_id, ts=info.ts, reason=info.reason, size_bytes=info.size_bytes, sha256=sha256
        )
        text = sidecar.model_dump_json().encode("utf-8")
        jpeg_path, sidecar_path = self._paths(info.id)
        try:
            _write_atomically(jpeg_path, jpeg)
            _write_atomically(sidecar_path, text)  # the sidecar last: it marks the snapshot complete
            sync_directory(self._dir)
        except OSError:
            self._remove_files(info.id)
            raise
        return _Entry(info, sha256, len(jpeg) + len(text))

    # --- reading ----------------------------------------------------------------------------------

    def list(self, device_id: str | None = None) -> builtins.list[SnapshotInfo]:
        """The snapshots still within retention, of one camera or all, newest first."""
        oldest = self._oldest_kept_ts()
        with self._lock:
            infos = [
                entry.info
                for entry in self._entries.values()
                if entry.info.ts >= oldest and (device_id is None or entry.info.device_id == device_id)
            ]
        return sorted(infos, key=lambda info: (info.ts, info.id), reverse=True)

    def info(self, snapshot_id: str) -> SnapshotInfo:
        """What is known of a snapshot; raises SnapshotNotFoundError if it is malformed, unknown or expired."""
        return self._entry(snapshot_id).info

    def read(self, snapshot_id: str) -> bytes:
        """The snapshot's JPEG, checked against its recorded size and SHA-256.

        Raises SnapshotNotFoundError for a malformed id (never touching the disk), an unknown or
        expired snapshot, and a damaged file (which is then deleted).
        """
        entry = self._entry(snapshot_id)
        jpeg_path, _ = self._paths(snapshot_id)
        try:
            with jpeg_path.open("rb") as handle:
                data = handle.read(MAX_ATTACHMENT_BYTES + 1)
        except FileNotFoundError as exc:  # purged a moment ago
            raise SnapshotNotFoundError(f"snapshot {snapshot_id} is gone") from exc
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot {snapshot_id}: {exc}") from exc
        if len(data) != entry.info.size_bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
            logger.warning("snapshot %s is damaged (%d bytes on disk); deleting it", snapshot_id, len(data))
            self._forget(snapshot_id)
            raise SnapshotNotFoundError(f"snapshot {snapshot_id} is damaged")
        return data

    def _entry(self, snapshot_id: str) -> _Entry:
        if not is_snapshot_id(snapshot_id):
            raise SnapshotNotFoundError("malformed snapshot id")
        oldest = self._oldest_kept_ts()
        with self._lock:
            entry = self._entries.get(snapshot_id)
        if entry is None or entry.info.ts < oldest:
            raise SnapshotNotFoundError(f"no snapshot {snapshot_id}")
        return entry

    # --- ageing out -------------------------------------------------------------------------------

    def purge(self) -> int:
        """Delete expired snapshots, then the oldest while over ``max_bytes`` (every one when disabled).

        Returns how many were deleted.
        """
        return self._purge(logging.INFO)

    def _purge(self, log_level: int) -> int:
        policy = self._policy
        oldest = self._oldest_kept_ts()
        with self._lock:
            by_age = sorted(self._entries.values(), key=lambda entry: (entry.info.ts, entry.info.id))
            total = sum(entry.disk_bytes for entry in by_age)
            victims = []
            for entry in by_age:
                if policy.enabled and entry.info.ts >= oldest and total <= policy.max_bytes:
                    break  # ordered by age: nothing newer is expired, and the rest fits
                victims.append(entry.info.id)
                total -= entry.disk_bytes
            for snapshot_id in victims:
                del self._entries[snapshot_id]
        for snapshot_id in victims:
            self._remove_files(snapshot_id)
        if victims:
            logger.log(log_level, "purged %d snapshots; %d kept, %d bytes", len(victims), self.count, self.disk_bytes)
        return len(victims)

    def evict_oldest(self, count: int = 1) -> int:
        """Delete the ``count`` oldest snapshots whatever the policy (the disk is full and the buffer needs
        the room); returns how many went, 0 when there are none. Safe from any thread."""
        with self._lock:
            by_age = sorted(self._entries.values(), key=lambda entry: (entry.info.ts, entry.info.id))
            victims = [entry.info.id for entry in by_age[:count]]
            for snapshot_id in victims:
                del self._entries[snapshot_id]
        for snapshot_id in victims:
            self._remove_files(snapshot_id)
        if victims:
            logger.warning("evicted the %d oldest snapshots to free disk space; %d kept", len(victims), self.count)
        return len(victims)

    def _oldest_kept_ts(self) -> int:
        return self._clock() - round(self._policy.retention_s * 1000)

    def _forget(self, snapshot_id: str) -> None:
        with self._lock:
            self._entries.pop(snapshot_id, None)
        self._remove_files(snapshot_id)

    def _remove_files(self, snapshot_id: str) -> None:
        jpeg_path, sidecar_path = self._paths(snapshot_id)
        for path in (sidecar_path, jpeg_path):  # the sidecar first: without it the JPEG is an orphan
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("cannot delete %s (deleted at the next start): %s", path.name, exc)

    # --- start-up ---------------------------------------------------------------------------------

    def _paths(self, snapshot_id: str) -> tuple[Path, Path]:
        return self._dir / f"{snapshot_id}{_JPEG}", self._dir / f"{snapshot_id}{_SIDECAR}"

    def _load(self) -> None:
        """Rebuild the index from the directory; delete leftovers of an interrupted write or delete."""
        jpegs: set[str] = set()
        sidecars: set[str] = set()
        leftovers = 0
        for path in self._dir.iterdir():
            stem, suffix = os.path.splitext(path.name)
            if suffix == _TMP:
                path.unlink(missing_ok=True)
                leftovers += 1
            elif is_snapshot_id(stem) and suffix == _JPEG:
                jpegs.add(stem)
            elif is_snapshot_id(stem) and suffix == _SIDECAR:
                sidecars.add(stem)
        for snapshot_id in sidecars:
            entry = self._load_entry(snapshot_id)
            if entry is None:
                self._remove_files(snapshot_id)
                leftovers += 1
            else:
                self._entries[snapshot_id] = entry
        for orphan in jpegs - sidecars:  # a power cut between the two renames, or during a delete
            self._remove_files(orphan)
            leftovers += 1
        if leftovers:
            logger.warning("deleted %d incomplete or damaged snapshot files in %s", leftovers, self._dir)
        logger.info("%d snapshots in %s", len(self._entries), self._dir)

    def _load_entry(self, snapshot_id: str) -> _Entry | None:
        jpeg_path, sidecar_path = self._paths(snapshot_id)
        try:
            text = sidecar_path.read_bytes()
            sidecar = _Sidecar.model_validate_json(text)
            on_disk = jpeg_path.stat().st_size
        except (OSError, ValidationError) as exc:
            logger.debug("snapshot %s is incomplete: %s", snapshot_id, exc)
            return None
        if on_disk != sidecar.size_bytes:
            logger.debug("snapshot %s has %d bytes, its sidecar says %d", snapshot_id, on_disk, sidecar.size_bytes)
            return None
        info = SnapshotInfo(snapshot_id, sidecar.device_id, sidecar.ts, sidecar.reason, sidecar.size_bytes)
        return _Entry(info, sidecar.sha256, sidecar.size_bytes + len(text))


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + _TMP)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
