"""Line crossing: anonymous blobs on the motion mask, followed frame to frame, counted across a line.

Blobs are the outer contours of the (closed) foreground mask, kept if their area is plausible for a
walker or a vehicle. A blob is only ever a centroid, an area, a bounding box and the side of the line
it was last seen on, and it is forgotten once it leaves.

Following is done on time, not on frames, so it works the same at 2 or at 10 analysed frames a second:
a track seen once may move up to ``max_speed`` (frame widths per second) times the time since it was
seen; a track seen twice has a velocity, and is looked for where that velocity puts it now, within
half that distance. Tracks and blobs are paired closest first (greedy), by how far each blob lies
from where the track was expected, so a track lost for a while, whose allowance has grown, does not
take the blob of a track followed all along. A track unseen for ``max_missed_s`` is dropped.

A blob's side is only decided outside a band of ``hysteresis`` either side of the line; inside the
band it keeps the side it had. A crossing counts when the decided side flips between two successive
sightings, whether or not any frame showed the blob on the line, so a walker who moves farther than
the band between analysed frames is counted; a blob jittering on the line is counted once at most,
and a blob passing beyond the end of the line (where its path crossed the line's extension) is not.

Counts are kept per minute; a minute in which frames were analysed is *reported* once the next
minute's first frame arrives, zeros included, so an empty entrance (zeros) can be told from a counter
that sees no frames (no reports).
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
MATCH_MARGIN: Final = 0.03
"""Allowance (fraction of the width) for a blob's centroid wandering as its shape changes, on top of
the distance it may move: a blob's outline changes from frame to frame (limbs, partial views at the
edges, fragments joining), whatever the time between frames."""
_PREDICTED_SHARE: Final = 0.5
"""A track with a velocity is looked for within this share of ``max_speed * dt`` of where it should be."""
_VELOCITY_SMOOTHING: Final = 0.5
"""Weight of the newest displacement in a track's velocity."""


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
    ts: int  # when last seen
    side: int  # +1 or -1 once decided, 0 while unknown
    vx: float = 0.0  # pixels per ms, once seen twice
    vy: float = 0.0
    moving: bool = False  # whether vx, vy are known

    def expected(self, ts: int) -> tuple[float, float]:
        dt = ts - self.ts
        return self.x + self.vx * dt, self.y + self.vy * dt


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
        self._margin = MATCH_MARGIN * width
        self._speed = settings.max_speed * width / 1_000.0  # pixels per ms
        self._max_missed_ms = settings.max_missed_s * 1_000.0
        size = settings.merge_kernel
        self._kernel = as_gray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) if size > 1 else None
        self._tracks: list[_Track] = []
        self._total_in = 0
        self._total_out = 0
        self._minutes: deque[MinuteCount] = deque(maxlen=settings.keep_minutes)
        self._watching = False  # whether frames were analysed in the current minute
        self._finished: list[MinuteCount] = []  # watched minutes that ended, not yet taken

    @property
    def settings(self) -> LineSettings:
        return self._settings

    def update(self, foreground: Gray, ts: int) -> list[Crossing]:
        """Follow the blobs of ``foreground`` (the motion mask at ``ts``); return new crossings."""
        self._advance_to(ts)
        blobs = self._blobs(foreground)
        crossings: list[Crossing] = []
        for track, blob in self._match(blobs, ts):
            crossing = self._move(track, blob, ts)
            if crossing is not None:
                crossings.append(crossing)
        self._watching = True
        return crossings

    def counts(self) -> CrossingCounts:
        """Totals and the current minute's counts (as of the last update)."""
        minute = self._minutes[-1] if self._minutes else MinuteCount(0)
        return CrossingCounts(self._total_in, self._total_out, minute)

    def minutes(self) -> tuple[MinuteCount, ...]:
        """The counts of the last ``keep_minutes`` minutes, oldest first; quiet minutes count zero."""
        return tuple(self._minutes)

    def take_finished(self) -> list[MinuteCount]:
        """The minutes in which frames were analysed that have ended since the last call, oldest first.

        A minute ends when a frame of a later minute arrives; minutes without a single frame (the
        camera was offline) are not among them, so a report of zero always means "watched, nobody".
        """
        finished, self._finished = self._finished, []
        return finished

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

    def _allowance(self, track: _Track, ts: int) -> float:
        """How far from where ``track`` is expected at ``ts`` a blob may be and still be it (pixels)."""
        reach = self._speed * max(ts - track.ts, 0)
        return self._margin + (_PREDICTED_SHARE * reach if track.moving else reach)

    def _match(self, blobs: list[_Blob], ts: int) -> list[tuple[_Track, _Blob]]:
        """Pair tracks with blobs, best first; start tracks for new blobs, drop tracks unseen too long."""
        pairs: list[tuple[float, int, int]] = []
        for t, track in enumerate(self._tracks):
            expected_x, expected_y = track.expected(ts)
            allowance = self._allowance(track, ts)
            for b, blob in enumerate(blobs):
                distance = math.hypot(expected_x - blob.x, expected_y - blob.y)
                if distance <= allowance:
                    pairs.append((distance, t, b))
        pairs.sort()
        track_taken: set[int] = set()
        blob_taken: set[int] = set()
        matched: list[tuple[_Track, _Blob]] = []
        for _, t, b in pairs:
            if t in track_taken or b in blob_taken:
                continue
            track_taken.add(t)
            blob_taken.add(b)
            matched.append((self._tracks[t], blobs[b]))
        survivors = [
            track for t, track in enumerate(self._tracks) if t in track_taken or ts - track.ts <= self._max_missed_ms
        ]
        for b, blob in enumerate(blobs):
            if b not in blob_taken:
                survivors.append(_Track(blob.x, blob.y, ts, self._side(blob.x, blob.y, previous=0)))
        self._tracks = survivors
        return matched

    def _move(self, track: _Track, blob: _Blob, ts: int) -> Crossing | None:
        """Move ``track`` to ``blob`` seen at ``ts``; the crossing, if its side flipped."""
        before_x, before_y = track.x, track.y
        dt = ts - track.ts
        if dt > 0:
            vx, vy = (blob.x - track.x) / dt, (blob.y - track.y) / dt
            if track.moving:
                vx = _VELOCITY_SMOOTHING * vx + (1.0 - _VELOCITY_SMOOTHING) * track.vx
                vy = _VELOCITY_SMOOTHING * vy + (1.0 - _VELOCITY_SMOOTHING) * track.vy
            track.vx, track.vy, track.moving = vx, vy, True
        track.x, track.y, track.ts = blob.x, blob.y, ts
        side = self._side(blob.x, blob.y, previous=track.side)
        flipped = track.side != 0 and side == -track.side
        track.side = side
        if not flipped:
            return None
        position = self._position(*self._where_crossed(before_x, before_y, blob.x, blob.y))
        if not 0.0 <= position <= 1.0:
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

    def _where_crossed(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
        """Where the step from ``(x0, y0)`` to ``(x1, y1)`` crossed the line (extended), or else ``(x0, y0)``.

        The step may not cross it: a blob that entered the band on the far side at its previous
        sighting crossed before that, next to ``(x0, y0)``.
        """
        d0, d1 = self._signed_distance(x0, y0), self._signed_distance(x1, y1)
        if d0 * d1 >= 0.0:
            return x0, y0
        share = d0 / (d0 - d1)
        return x0 + share * (x1 - x0), y0 + share * (y1 - y0)

    def _position(self, x: float, y: float) -> float:
        """Where ``(x, y)`` lies along the line: 0 at its start, 1 at its end."""
        return ((x - self._ax) * self._dx + (y - self._ay) * self._dy) / (self._length**2)

    def _advance_to(self, ts: int) -> None:
        """Make the minute holding ``ts`` the current one, with zero counts for any quiet minutes between."""
        start = ts - ts % MINUTE_MS
        if not self._minutes:
            self._minutes.append(MinuteCount(start))
            return
        last = self._minutes[-1].start_ms
        if start <= last:
            return
        if self._watching:
            self._finished.append(self._minutes[-1])
            self._watching = False
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
