"""Which camera sources a gateway may open: what the fleet checks when a config is written and the gateway when
it builds a camera, so a config layer cannot point FFmpeg or urllib at anything but a camera.

A source is an ``rtsp://``/``rtsps://`` stream or an ``http://``/``https://`` camera with a host; in development
also a video file given as a plain path. Every other scheme is refused, above all FFmpeg's own protocols that
read local files or chain others (``file:``, ``concat:``, ``subfile:``, ``pipe:``, ``data:``, ``ftp:`` …), and
so are control characters. When a gateway opens an RTSP stream it gives FFmpeg a protocol whitelist
(:data:`RTSP_PROTOCOLS`), so a stream cannot redirect it to another protocol either.
"""

import urllib.parse
from typing import Final
from urllib.parse import urlsplit

CAMERA_SCHEMES: Final = frozenset({"rtsp", "rtsps", "http", "https"})
RTSP_PROTOCOLS: Final = "rtsp,rtsps,rtp,srtp,udp,tcp,tls"
"""FFmpeg's ``protocol_whitelist`` for an RTSP camera: the stream and its transports, nothing else."""
FILE_PROTOCOLS: Final = "file"
"""FFmpeg's ``protocol_whitelist`` for a video file (development): that file, no network."""


def camera_source_problem(source: str, *, files: bool) -> str | None:
    """Why ``source`` may not be opened as a camera (``files``: whether plain paths to video files may), or None."""
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in source):
        return "a camera source holds no control characters"
    head = source.split("/", 1)[0]
    if "://" in source:
        return _url_problem(source)
    if ":" in head:  # FFmpeg reads "name:" (or "name,options:") before the first slash as a protocol
        return f"a camera source is an rtsp(s):// or http(s):// URL, not {head.split(':', 1)[0]}:"
    return None if files else "a camera source is an rtsp(s):// or http(s):// URL (video files: development only)"


def _url_problem(source: str) -> str | None:
    try:
        parts = urlsplit(source)
        host = parts.hostname
    except ValueError as exc:
        return f"the camera URL is malformed: {exc}"
    if parts.scheme.lower() not in CAMERA_SCHEMES:
        return f"a camera source is an rtsp(s):// or http(s):// URL, not {parts.scheme or 'a path with ://'}"
    return None if host else "the camera URL names no host"


def redact_source(source: str) -> str:
    """The URL fit for logs: without user, password or query (``?...`` stands for a query); a path unchanged."""
    if "://" not in source:
        return source
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:  # an unbalanced "[" of an IPv6 address
        return f"{source.partition('://')[0]}://(a URL that does not parse)"
    try:
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a bad port: the host and port as written, without any login
        host, port = parts.netloc.rpartition("@")[2], ""
    else:
        if ":" in host:
            host = f"[{host}]"  # IPv6
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"
