"""A real RTSP server (GStreamer's gst-rtsp-server) serving H.264 clips, run as a child process by the tests.

Run by :mod:`tests.rtsp_server` under a Python that can import GStreamer's GObject bindings (``gi``):
usually Debian's ``/usr/bin/python3`` with ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0``, since the
project's virtual environment cannot import ``gi``. It imports nothing from the project. Usage::

    python3 tests/rtsp_serve.py --check          # exit 0 if every GStreamer part it needs is installed
    python3 tests/rtsp_serve.py CONFIG.json      # serve until SIGTERM or SIGINT

The config is JSON::

    {"port": 0, "mounts": [{"path": "/cam1", "clip": "/abs/clip.mp4", "playback": "loop"}],
     "user": null, "password": null, "epoch": 12345.6, "tcp_only": false, "parent": 4242}

Port 0 lets the kernel choose a free port. Once the server listens on 127.0.0.1 it writes
``READY port=<port>`` on a line of its own to stdout (and flushes it).

Each clip (MP4, Matroska or a raw H.264 byte stream; no B-frames) is demuxed once into memory at
start-up; a session is fed from memory through ``appsrc`` without re-encoding, so clients decode
exactly the clip's frames, paced at its frame rate. ``playback`` decides where a session starts:

* ``once``: at the clip's first frame; the stream ends after its last frame.
* ``loop``: at the clip's first frame, and loops forever.
* ``live``: like a camera that has been running since ``epoch`` (``time.monotonic()``, which all
  processes of the machine share): every session starts at the keyframe at or before the clip's
  current position, so clients connecting together see the same frames, and the scene goes on
  from where it would be across a restart of the server. Loops forever.

With ``user`` and ``password`` every mount requires that basic-auth login; other clients get 401.
With ``tcp_only`` RTP goes only over the RTSP connection (interleaved): a client asking for UDP gets
461 Unsupported Transport, as from a camera behind a firewall. With ``parent`` (a process id) the
server quits once its parent is no longer that process: tests killed outright leave no server behind.
"""

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gi  # type: ignore[import-not-found, unused-ignore]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

ELEMENTS = ("filesrc", "parsebin", "h264parse", "appsink", "appsrc", "rtph264pay", "qtdemux", "matroskademux")
"""The GStreamer elements serving needs (the demuxers for MP4 and Matroska clips)."""
ROLE = "viewer"
LOOPBACK = "127.0.0.1"
DEFAULT_FPS = 10
PLAYBACKS = ("once", "loop", "live")
PARENT_CHECK_MS = 1_000


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    keyframe: bool


@dataclass(frozen=True, slots=True)
class LoadedClip:
    caps: Any  # Gst.Caps of the byte stream
    frames: tuple[EncodedFrame, ...]
    frame_ns: int

    def start_index(self, playback: str, epoch: float) -> int:
        """The frame a new session starts at (a keyframe)."""
        if playback != "live":
            return 0
        position = int((time.monotonic() - epoch) * 1e9 // self.frame_ns) % len(self.frames)
        for index in range(position, -1, -1):
            if self.frames[index].keyframe:
                return index
        return 0


def load_clip(path: Path) -> LoadedClip:
    """Every access unit of the clip's H.264 stream, as a byte stream, with its keyframe flag."""
    pipeline = Gst.parse_launch(
        "filesrc name=file ! parsebin ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au"
        " ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("file").set_property("location", str(path))
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    frames: list[EncodedFrame] = []
    caps = None
    durations: list[int] = []
    try:
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buffer = sample.get_buffer()
            caps = caps or sample.get_caps()
            frames.append(
                EncodedFrame(buffer.extract_dup(0, buffer.get_size()), not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT))
            )
            if buffer.duration != Gst.CLOCK_TIME_NONE:
                durations.append(buffer.duration)
        message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        if message is not None:
            error, debug = message.parse_error()
            raise SystemExit(f"cannot read {path}: {error.message} ({debug})")
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not frames or caps is None:
        raise SystemExit(f"no H.264 frames in {path}")
    return LoadedClip(caps, tuple(frames), _frame_ns(caps, durations))


def _frame_ns(caps: Any, durations: list[int]) -> int:
    ok, numerator, denominator = caps.get_structure(0).get_fraction("framerate")
    if ok and numerator > 0 and denominator > 0:
        return int(Gst.SECOND * denominator // numerator)
    if durations:
        return sorted(durations)[len(durations) // 2]
    return int(Gst.SECOND // DEFAULT_FPS)


class Feeder:
    """Feeds one session's ``appsrc`` with the clip's frames, timestamped from 0 at the frame rate."""

    def __init__(self, clip: LoadedClip, start: int, *, loop: bool) -> None:
        self._clip = clip
        self._index = start
        self._sent = 0
        self._loop = loop

    def need_data(self, source: Any, _length: int) -> None:
        frames = self._clip.frames
        if self._index >= len(frames):
            if not self._loop:
                source.emit("end-of-stream")
                return
            self._index = 0
        frame = frames[self._index]
        buffer = Gst.Buffer.new_wrapped(frame.data)
        buffer.pts = buffer.dts = self._sent * self._clip.frame_ns
        buffer.duration = self._clip.frame_ns
        if not frame.keyframe:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        source.emit("push-buffer", buffer)
        self._index += 1
        self._sent += 1


def make_factory(clip: LoadedClip, playback: str, epoch: float, *, auth: bool, tcp_only: bool) -> Any:
    factory = GstRtspServer.RTSPMediaFactory()
    if tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    # config-interval=-1: SPS and PPS go with every keyframe, so a decoder can start at any of them.
    factory.set_launch("( appsrc name=src format=time ! rtph264pay name=pay0 pt=96 config-interval=-1 )")

    def configure(_factory: Any, media: Any) -> None:
        source = media.get_element().get_by_name_recurse_up("src")
        source.set_property("caps", clip.caps)
        feeder = Feeder(clip, clip.start_index(playback, epoch), loop=playback != "once")
        source.connect("need-data", feeder.need_data)

    factory.connect("media-configure", configure)
    if auth:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role(ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    return factory


def missing_elements() -> list[str]:
    return [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]


def serve(config: dict[str, Any]) -> int:
    server = GstRtspServer.RTSPServer()
    server.set_address(LOOPBACK)
    server.set_service(str(config["port"]))
    user, password = config.get("user"), config.get("password")
    if user is not None:
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        auth = GstRtspServer.RTSPAuth()
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password or ""), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for mount in config["mounts"]:
        if mount["playback"] not in PLAYBACKS:
            raise SystemExit(f"playback must be one of {PLAYBACKS}, not {mount['playback']!r}")
        clip = load_clip(Path(mount["clip"]))
        factory = make_factory(
            clip, mount["playback"], config["epoch"], auth=user is not None, tcp_only=config.get("tcp_only", False)
        )
        mounts.add_factory(mount["path"], factory)
    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on {LOOPBACK}:{config['port']}: address already in use?\n")
        return 1
    loop = GLib.MainLoop()
    for number in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, number, loop.quit)
    parent = config.get("parent")
    if parent is not None:

        def parent_alive() -> bool:
            if os.getppid() != parent:  # the tests died without stopping it (SIGKILL, a crash)
                loop.quit()
                return False
            return True

        GLib.timeout_add(PARENT_CHECK_MS, parent_alive)
    sys.stdout.write(f"READY port={server.get_bound_port()}\n")
    sys.stdout.flush()
    loop.run()
    return 0


def main(argv: list[str]) -> int:
    Gst.init(None)
    if argv == ["--check"]:
        missing = missing_elements()
        if missing:
            sys.stderr.write(f"missing GStreamer elements: {', '.join(missing)}\n")
            return 1
        return 0
    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    return serve(json.loads(Path(argv[0]).read_text()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
