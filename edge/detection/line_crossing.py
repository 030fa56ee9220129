"""Line crossing: anonymous blobs on the motion mask, followed frame to frame, counted across a line.

Blobs are the outer contours of the (closed) foreground mask, kept if their area is plausible for a
walker or a vehicle. Each is matched to the nearest blob of the previous frame within
``max_match_distance`` (greedy, closest pairs first); a blob is only ever a centroid, an area, a
bounding box and the side of the line it was last seen on, and it is forgotten once it leaves.

A blob's side is only decided outside a band of ``hysteresis`` either side of the line; inside the
band it keeps the side it had. A crossing counts when the decided side flips, so a blob jittering
on the line is counted once at most, and a blob passing beyond the end of the line is not counted.
"""

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

import cv2

from edge.detection.motion import Gray, as_gray
from protocol.detection import LineSettings

logger = logging.getLogger(__name__)

Direction = Literal["in", "out"]
Box = tuple[int, int, int, int]
"""A blob's bounding box ``(x, y, width, height)`` in pixels of the frame it was found on."""
MINUTE_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class Crossing:
    """One blob crossed the line."""

    ts: int
    direction: Direction
    blob_area: float  # fraction of the frame
    position: float  # where along the line, 0 at its start and 1 at its end
    box: Box  # the blob's bounding box on the processing frame, as it crossed


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Crossings in each direction during the minute starting at ``start_ms``."""

    start_ms: int
    count_in: int = 0
    count_out: int = 0


@dataclass(frozen=True, slots=True)
class CrossingCounts:
    """Totals since start-up and the counts of the current minute."""

    total_in: int
    total_out: int
    minute: MinuteCount


@dataclass(frozen=True, slots=True)
class _Blob:
    x: float
    y: float
    area: float  # fraction of the frame
    box: Box


@dataclass(slots=True)
class _Track:
    x: float
    y: float
    side: int  # +1 or -1 once decided, 0 while unknown
    missed: int = 0


class LineCrossingCounter:
    """Tracks blobs on successive foreground masks and counts their crossings of one line."""

    def __init__(self, settings: LineSettings, width: int, height: int) -> None:
        self._settings = settings
        self._width = width
        self._frame_area = float(width * height)
        self._ax, self._ay = settings.start[0] * width, settings.start[1] * height
        self._dx = settings.end[0] * width - self._ax
        self._dy = settings.end[1] * height - self._ay
        self._length = math.hypot(self._dx, self._dy)
        inside_x, inside_y = settings.inside[0] * width, settings.inside[1] * height
        self._inside_side = 1 if self._signed_distance(inside_x, inside_y) > 0 else -1
        self._band = settings.hysteresis * width
        self._max_distance = settings.max_match_distance * width
        size = settings.merge_kernel
        self._kernel = as_gray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) if size > 1 else None
        self._tracks: list[_Track] = []
        self._total_in = 0
        self._total_out = 0
        self._minutes: deque[MinuteCount] = deque(maxlen=settings.keep_minutes)

    @property
    def settings(self) -> LineSettings:
        return self._settings

    def update(self, foreground: Gray, ts: int) -> list[Crossing]:
        """Follow the blobs of ``foreground`` (the motion mask at ``ts``); return new crossings."""
        self._advance_to(ts)
        blobs = self._blobs(foreground)
        crossings: list[Crossing] = []
        matched = self._match(blobs)
        for track, blob in matched:
            crossing = self._move(track, blob, ts)
            if crossing is not None:
                crossings.append(crossing)
        return crossings

    def counts(self) -> CrossingCounts:
        """Totals and the current minute's counts (as of the last update)."""
        minute = self._minutes[-1] if self._minutes else MinuteCount(0)
        return CrossingCounts(self._total_in, self._total_out, minute)

    def minutes(self) -> tuple[MinuteCount, ...]:
        """The counts of the last ``keep_minutes`` minutes, oldest first; quiet minutes count zero."""
        return tuple(self._minutes)

    # --- blobs and tracks --------------------------------------------------------------------------

    def _blobs(self, foreground: Gray) -> list[_Blob]:
        mask = foreground
        if self._kernel is not None:
            mask = as_gray(cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, self._kernel))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        blobs: list[_Blob] = []
        for contour in contours:
            moments = cv2.moments(contour)
            area = moments["m00"] / self._frame_area
            if self._settings.min_blob_area <= area <= self._settings.max_blob_area:
                centre_x, centre_y = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
                x, y, width, height = cv2.boundingRect(contour)
                blobs.append(_Blob(centre_x, centre_y, area, (x, y, width, height)))
        if len(blobs) > self._settings.max_blobs:
            blobs = sorted(blobs, key=lambda blob: blob.area, reverse=True)[: self._settings.max_blobs]
        return blobs

    def _match(self, blobs: list[_Blob]) -> list[tuple[_Track, _Blob]]:
        """Pair tracks with blobs, closest first; start tracks for new blobs, age and drop lost ones."""
        pairs = sorted(
            (math.hypot(track.x - blob.x, track.y - blob.y), t, b)
            for t, track in enumerate(self._tracks)
            for b, blob in enumerate(blobs)
        )
        track_taken: set[int] = set()
        blob_taken: set[int] = set()
        matched: list[tuple[_Track, _Blob]] = []
        for distance, t, b in pairs:
            if distance > self._max_distance:
                break
            if t in track_taken or b in blob_taken:
                continue
            track_taken.add(t)
            blob_taken.add(b)
            matched.append((self._tracks[t], blobs[b]))
        survivors: list[_Track] = []
        for t, track in enumerate(self._tracks):
            if t not in track_taken:
                track.missed += 1
            if track.missed <= self._settings.max_missed_frames:
                survivors.append(track)
        for b, blob in enumerate(blobs):
            if b not in blob_taken:
                survivors.append(_Track(blob.x, blob.y, self._side(blob.x, blob.y, previous=0)))
        self._tracks = survivors
        return matched

    def _move(self, track: _Track, blob: _Blob, ts: int) -> Crossing | None:
        track.x, track.y, track.missed = blob.x, blob.y, 0
        side = self._side(blob.x, blob.y, previous=track.side)
        flipped = track.side != 0 and side == -track.side
        track.side = side
        position = ((blob.x - self._ax) * self._dx + (blob.y - self._ay) * self._dy) / (self._length**2)
        if not flipped or not 0.0 <= position <= 1.0:
            return None
        direction: Direction = "in" if side == self._inside_side else "out"
        self._count(direction)
        logger.debug("blob crossed line %s going %s at %.2f along it", self._settings.name, direction, position)
        return Crossing(ts, direction, blob.area, position, blob.box)

    # --- geometry and counting ---------------------------------------------------------------------

    def _signed_distance(self, x: float, y: float) -> float:
        return (self._dx * (y - self._ay) - self._dy * (x - self._ax)) / self._length

    def _side(self, x: float, y: float, *, previous: int) -> int:
        distance = self._signed_distance(x, y)
        if distance > self._band:
            return 1
        if distance < -self._band:
            return -1
        return previous

    def _advance_to(self, ts: int) -> None:
        """Make the minute holding ``ts`` the current one, with zero counts for any quiet minutes between."""
        start = ts - ts % MINUTE_MS
        if not self._minutes:
            self._minutes.append(MinuteCount(start))
            return
        last = self._minutes[-1].start_ms
        if start <= last:
            return
        first_new = max(last + MINUTE_MS, start - (self._settings.keep_minutes - 1) * MINUTE_MS)
        for minute in range(first_new, start + 1, MINUTE_MS):
            self._minutes.append(MinuteCount(minute))

    def _count(self, direction: Direction) -> None:
        minute = self._minutes[-1]
        if direction == "in":
            self._total_in += 1
            self._minutes[-1] = MinuteCount(minute.start_ms, minute.count_in + 1, minute.count_out)
        else:
            self._total_out += 1
            self._minutes[-1] = MinuteCount(minute.start_ms, minute.count_in, minute.count_out + 1)
