"""Why an RTSP camera cannot be opened: a small RTSP client that asks the camera itself.

OpenCV's FFmpeg backend reports every failed open the same way, so the camera adapter cannot tell a
wrong password from a wrong path or a camera that is switched off. :func:`probe_rtsp` does what a
player does first, ``OPTIONS`` and ``DESCRIBE`` over TCP, answering one ``401`` challenge (Basic or
Digest, as cameras use both) with the login from the URL, and classifies the outcome as a
:class:`ProbeKind` with a one-line reason a technician can act on (:class:`ProbeResult`).

It is synchronous (it runs in the camera's capture thread), uses only the standard library, raises
nothing for network failures (they are results), never takes longer than its timeout (name
resolution included; a resolver that hangs is left behind in a daemon thread) and reads at most
:data:`RESPONSE_LIMIT_BYTES` per answer. Reasons never contain the user, the password or the query
string of the URL (see :func:`redact`). ``rtsps://`` URLs are not probed (:attr:`ProbeKind.NOT_PROBED`).

::

    result = probe_rtsp("rtsp://viewer:s3cret@192.0.2.10:554/stream1", timeout_s=5.0)
    if result.kind is ProbeKind.OK:
        print(result.codec)   # "H264"
    else:
        print(result.reason)  # "rtsp://192.0.2.10:554/stream1 rejected the login (401 Unauthorized): ..."
"""

import base64
import contextlib
import enum
import errno
import hashlib
import ipaddress
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from protocol.camera_sources import redact_source

RESPONSE_LIMIT_BYTES: Final = 64 * 1024
"""The most bytes read for one answer (status line, headers and body)."""
DEFAULT_PORT: Final = 554
SUPPORTED_CODECS: Final = frozenset({"H264", "H265", "MJPEG"})
"""Video codecs the gateway's OpenCV/FFmpeg decodes (as :attr:`ProbeResult.codec` names them)."""
USER_AGENT: Final = "outpost-probe"

_CODEC_NAMES: Final = {"H264": "H264", "H265": "H265", "HEVC": "H265", "JPEG": "MJPEG", "MJPEG": "MJPEG"}
"""SDP encoding names (upper case) and what :attr:`ProbeResult.codec` calls them."""
_STATIC_PAYLOADS: Final = {26: "JPEG", 31: "H261", 32: "MPV", 34: "H263"}
"""RFC 3551's static video payload types, for SDP without an ``a=rtpmap`` line."""
_STATUS_LINE: Final = re.compile(r"RTSP/\d\.\d\s+(\d{3})(?:\s+(.*))?")
_AUTH_PARAM: Final = re.compile(r"""([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)""")
_PRINTABLE: Final = re.compile(r"[^\x20-\x7e]")
_SHOWN_CHARS: Final = 60
"""The most characters of a server's own text (a status line) put in a reason."""
_UNREACHABLE_ERRNOS: Final = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})


class ProbeKind(enum.StrEnum):
    """What probing an RTSP URL found."""

    OK = "ok"
    """The camera describes a video track in a codec the gateway decodes."""
    UNAUTHORIZED = "unauthorized"
    """401: the login from the URL was rejected, or the URL has none and the camera wants one."""
    NOT_FOUND = "not_found"
    """404: the camera has no stream at that path."""
    REFUSED = "refused"
    """Nothing listens on that port (connection refused)."""
    TIMEOUT = "timeout"
    """Connecting, or an answer, took longer than the timeout."""
    UNREACHABLE = "unreachable"
    """The host name does not resolve, or there is no route to the host."""
    UNSUPPORTED_CODEC = "unsupported_codec"
    """The camera answered, but offers no video track in a codec the gateway decodes."""
    PROTOCOL_ERROR = "protocol_error"
    """Anything else: not an RTSP answer, another 4xx/5xx status, a connection closed mid-answer."""
    INVALID_URL = "invalid_url"
    """The URL cannot be probed as written (no host, a bad port)."""
    NOT_PROBED = "not_probed"
    """Not an ``rtsp://`` URL (``rtsps://`` included): nothing was asked."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of :func:`probe_rtsp`: a kind and a one-line reason without credentials."""

    kind: ProbeKind
    reason: str
    codec: str | None = None
    """The video codec the camera offers (``"H264"``, ``"H265"``, ``"MJPEG"``) when :attr:`kind` is OK."""
    status: int | None = None
    """The RTSP status code of the answer that decided the kind, if an answer did."""

    @property
    def ok(self) -> bool:
        return self.kind is ProbeKind.OK


def probe_rtsp(url: str, timeout_s: float) -> ProbeResult:
    """``OPTIONS`` and ``DESCRIBE`` ``url`` and classify what happens; takes at most about ``timeout_s``."""
    deadline = time.monotonic() + max(timeout_s, 0.0)
    try:
        target = _Target.parse(url)
    except _UrlError as exc:
        return ProbeResult(exc.kind, exc.reason)
    return _Probe(target, deadline, timeout_s).run()


def video_codecs(sdp: str) -> list[str]:
    """The encoding names of the SDP's video tracks, in order (upper case; a static payload type's name).

    ``HEVC`` is reported as ``H265`` and ``JPEG`` as ``MJPEG``, as in :data:`SUPPORTED_CODECS`.
    """
    codecs: list[str] = []
    for media in _media_sections(sdp):
        if media.kind != "video":
            continue
        for payload in media.payloads:
            name = media.rtpmap.get(payload)
            if name is None and payload.isdigit():
                name = _STATIC_PAYLOADS.get(int(payload))
            if name is None:
                name = f"payload type {payload}"
            codecs.append(_CODEC_NAMES.get(name, name))
    return codecs


def media_kinds(sdp: str) -> list[str]:
    """The media types of the SDP's tracks (``video``, ``audio``, ``application`` ...), in order."""
    return [media.kind for media in _media_sections(sdp)]


def supported_codec(sdp: str) -> str | None:
    """The first video codec of the SDP that the gateway decodes, or None."""
    return next((codec for codec in video_codecs(sdp) if codec in SUPPORTED_CODECS), None)


# --- the URL ---------------------------------------------------------------------------------------


class _UrlError(Exception):
    def __init__(self, kind: ProbeKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Target:
    host: str
    port: int
    request_uri: str
    """The URL sent in requests: no login, the query kept (cameras select streams with it)."""
    shown: str
    """The redacted URL, for reasons."""
    user: str | None
    password: str

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> "_Target":
        shown = redact_source(url)
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme == "rtsps":
            raise _UrlError(ProbeKind.NOT_PROBED, f"{shown}: RTSP over TLS (rtsps://) is not probed")
        if scheme != "rtsp":
            raise _UrlError(ProbeKind.NOT_PROBED, f"{shown}: not an rtsp:// URL, not probed")
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            raise _UrlError(
                ProbeKind.INVALID_URL, "the rtsp:// URL does not parse (an unclosed '[' in the host?)"
            ) from None
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise _UrlError(ProbeKind.INVALID_URL, f"{shown}: the port is not a number from 1 to 65535") from None
        host = parts.hostname
        if not host:
            raise _UrlError(ProbeKind.INVALID_URL, f"{shown}: the URL names no host")
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        request_uri = urllib.parse.urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
        if any(char in request_uri for char in " \r\n"):
            raise _UrlError(ProbeKind.INVALID_URL, f"{shown}: the URL contains spaces or line breaks")
        user = urllib.parse.unquote(parts.username) if parts.username is not None else None
        password = urllib.parse.unquote(parts.password or "")
        return cls(host, port, request_uri, shown, user, password)


# --- the exchange ----------------------------------------------------------------------------------


_AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, tuple[Any, ...]]
"""What connecting needs from ``getaddrinfo``: family, type, protocol and the socket address."""


class _Failed(Exception):
    """Ends a probe with a result (raised inside :class:`_Probe` only)."""

    def __init__(self, result: ProbeResult) -> None:
        super().__init__(result.reason)
        self.result = result


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    phrase: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def status_text(self) -> str:
        return f"{self.status} {self.phrase}".strip()


class _Probe:
    def __init__(self, target: _Target, deadline: float, timeout_s: float) -> None:
        self._target = target
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._cseq = 0
        self._authorize: Callable[[str], str] | None = None

    def run(self) -> ProbeResult:
        try:
            self._sock = self._connect()
            return self._exchange()
        except _Failed as failed:
            return failed.result
        finally:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()

    # --- connecting --------------------------------------------------------------------------------

    def _remaining(self) -> float:
        return self._deadline - time.monotonic()

    def _fail(self, kind: ProbeKind, reason: str, status: int | None = None) -> _Failed:
        return _Failed(ProbeResult(kind, reason, status=status))

    def _timed_out(self, what: str, hint: str = "") -> _Failed:
        return self._fail(ProbeKind.TIMEOUT, f"{what} within {self._timeout_s:g} s{hint}")

    def _connect(self) -> socket.socket:
        target = self._target
        addresses = self._resolve()
        first_error: OSError | None = None
        for family, kind, proto, address in addresses:
            remaining = self._remaining()
            if remaining <= 0:
                break
            sock = socket.socket(family, kind, proto)
            sock.settimeout(remaining)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                first_error = first_error or exc
                continue
            return sock
        if first_error is None or isinstance(first_error, TimeoutError):
            raise self._fail(
                ProbeKind.TIMEOUT,
                f"no connection to {target.address} within {self._timeout_s:g} s "
                "(camera off or unplugged, or a firewall drops the traffic)",
            )
        if isinstance(first_error, ConnectionRefusedError):
            raise self._fail(
                ProbeKind.REFUSED,
                f"connection to {target.address} refused: nothing listens on that port "
                "(check the port and that the camera's RTSP service is enabled)",
            )
        if first_error.errno in _UNREACHABLE_ERRNOS:
            raise self._fail(
                ProbeKind.UNREACHABLE,
                f"{target.address} is unreachable ({_os_error_text(first_error)}): check the address and the network",
            )
        raise self._fail(ProbeKind.UNREACHABLE, f"cannot connect to {target.address}: {_os_error_text(first_error)}")

    def _resolve(self) -> list[_AddressInfo]:
        """The host's addresses, within the remaining time (a hanging resolver is left in its thread)."""
        target = self._target
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            literal = False
        else:
            literal = True
        found: list[_AddressInfo] = []
        error: list[OSError] = []

        def lookup() -> None:
            try:
                infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                error.append(exc)
                return
            found.extend((family, kind, proto, address) for family, kind, proto, _, address in infos)

        if literal:
            lookup()
        else:
            resolver = threading.Thread(target=lookup, name="rtsp-probe-resolve", daemon=True)
            resolver.start()
            resolver.join(max(self._remaining(), 0.0))
            if resolver.is_alive():
                raise self._fail(
                    ProbeKind.UNREACHABLE,
                    f"cannot resolve the host name {target.host!r} within {self._timeout_s:g} s: "
                    "check the name and the gateway's DNS",
                )
        if error:
            raise self._fail(
                ProbeKind.UNREACHABLE,
                f"cannot resolve the host name {target.host!r} ({_os_error_text(error[0])}): "
                "check the name and the gateway's DNS",
            )
        if not found:
            raise self._fail(ProbeKind.UNREACHABLE, f"the host name {target.host!r} has no address")
        return found

    # --- requests ----------------------------------------------------------------------------------

    def _exchange(self) -> ProbeResult:
        target = self._target
        options = self._request("OPTIONS", {})
        if options.status == 401:
            raise self._unauthorized(options)
        # Other OPTIONS answers (501 ...) are the camera's business; DESCRIBE decides.
        described = self._request("DESCRIBE", {"Accept": "application/sdp"})
        status = described.status
        if status == 401:
            raise self._unauthorized(described)
        if status == 404:
            return ProbeResult(
                ProbeKind.NOT_FOUND,
                f"{target.shown}: the camera has no stream at this path (404 Not Found): check the path in the URL",
                status=status,
            )
        if status == 403:
            return ProbeResult(
                ProbeKind.PROTOCOL_ERROR,
                f"{target.shown}: the camera forbids this login the stream ({_shown(described.status_text)}): "
                "check the account's rights on the camera",
                status=status,
            )
        if not 200 <= status < 300:
            return ProbeResult(
                ProbeKind.PROTOCOL_ERROR,
                f"{target.shown} answered DESCRIBE with {_shown(described.status_text)}",
                status=status,
            )
        return self._classify_sdp(described)

    def _classify_sdp(self, described: _Response) -> ProbeResult:
        target = self._target
        sdp = described.body.decode("utf-8", errors="replace")
        kinds = media_kinds(sdp)
        if not kinds:
            return ProbeResult(
                ProbeKind.PROTOCOL_ERROR,
                f"{target.shown} answered DESCRIBE without a session description (SDP)",
                status=described.status,
            )
        codec = supported_codec(sdp)
        if codec is not None:
            return ProbeResult(
                ProbeKind.OK, f"{target.shown} offers {codec} video", codec=codec, status=described.status
            )
        offered = video_codecs(sdp)
        if offered:
            found = f"video in {', '.join(dict.fromkeys(offered))} only"
        else:
            found = f"no video track ({', '.join(dict.fromkeys(kinds))} only)"
        return ProbeResult(
            ProbeKind.UNSUPPORTED_CODEC,
            f"{target.shown} offers {_shown(found)}: set the camera's stream to H.264, H.265 or MJPEG",
            status=described.status,
        )

    def _unauthorized(self, response: _Response) -> _Failed:
        shown = self._target.shown
        if self._target.user is None:
            reason = (
                f"{shown} requires a login (401 Unauthorized) and the URL has none: "
                "add the camera's user:password@ to the URL"
            )
        else:
            reason = f"{shown} rejected the login (401 Unauthorized): check the user name and password in the URL"
        return self._fail(ProbeKind.UNAUTHORIZED, reason, status=response.status)

    def _request(self, method: str, headers: Mapping[str, str]) -> _Response:
        """Send ``method``; answer one 401 challenge with the URL's login (Basic or Digest) and send it again."""
        response = self._send(method, headers)
        if response.status != 401 or self._authorize is not None or self._target.user is None:
            return response
        authorize = _authorizer(response.all("WWW-Authenticate"), self._target)
        if authorize is None:
            challenges = ", ".join(_scheme(challenge) for challenge in response.all("WWW-Authenticate")) or "none"
            raise self._fail(
                ProbeKind.PROTOCOL_ERROR,
                f"{self._target.shown} asks for a login in a way this gateway does not speak "
                f"(WWW-Authenticate: {_shown(challenges)}; Basic and Digest are supported)",
                status=401,
            )
        self._authorize = authorize
        return self._send(method, headers)

    def _send(self, method: str, headers: Mapping[str, str]) -> _Response:
        assert self._sock is not None
        self._cseq += 1
        lines = [f"{method} {self._target.request_uri} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if self._authorize is not None:
            lines.append(f"Authorization: {self._authorize(method)}")
        remaining = self._remaining()
        if remaining <= 0:
            raise self._timed_out(f"{self._target.address} did not answer {method}")
        self._sock.settimeout(remaining)
        try:
            self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        except TimeoutError:
            raise self._timed_out(f"{self._target.address} did not take the {method} request") from None
        except OSError as exc:
            raise self._closed(method, exc) from None
        return self._read_response(method)

    def _read_response(self, method: str) -> _Response:
        head_end = self._read_until_head_end(method)
        head = self._buffer[:head_end].decode("iso-8859-1")
        lines = head.replace("\r\n", "\n").split("\n")
        match = _STATUS_LINE.fullmatch(lines[0].strip())
        if match is None:
            raise self._fail(
                ProbeKind.PROTOCOL_ERROR,
                f"{self._target.address} did not answer in RTSP (it sent {_shown(repr(lines[0]))}): "
                "is this the camera's RTSP port?",
            )
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon and name.strip():
                headers.append((name.strip(), value.strip()))
        status = int(match.group(1))
        length_text = next((value for key, value in headers if key.lower() == "content-length"), "0")
        if not length_text.isdigit():
            raise self._fail(
                ProbeKind.PROTOCOL_ERROR,
                f"{self._target.address} sent a bad Content-Length ({_shown(length_text)})",
                status=status,
            )
        body_end = head_end + int(length_text)
        if body_end > RESPONSE_LIMIT_BYTES:
            raise self._too_large(method)
        self._fill(body_end, method)
        body, self._buffer = self._buffer[head_end:body_end], self._buffer[body_end:]
        return _Response(status, (match.group(2) or "").strip(), tuple(headers), body)

    def _read_until_head_end(self, method: str) -> int:
        """Read until the blank line ending an answer's headers; the index just after it."""
        while True:
            for separator in (b"\r\n\r\n", b"\n\n"):
                index = self._buffer.find(separator)
                if index >= 0:
                    return index + len(separator)
            if len(self._buffer) >= RESPONSE_LIMIT_BYTES:
                raise self._too_large(method)
            self._receive(method)

    def _fill(self, size: int, method: str) -> None:
        while len(self._buffer) < size:
            self._receive(method)

    def _receive(self, method: str) -> None:
        assert self._sock is not None
        remaining = self._remaining()
        if remaining <= 0:
            raise self._no_answer(method)
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(RESPONSE_LIMIT_BYTES - len(self._buffer) or 1)
        except TimeoutError:
            raise self._no_answer(method) from None
        except OSError as exc:
            raise self._closed(method, exc) from None
        if not chunk:
            raise self._closed(method, None)
        self._buffer += chunk

    def _no_answer(self, method: str) -> _Failed:
        what = "did not finish its answer" if self._buffer else "sent no answer"
        return self._timed_out(
            f"{self._target.address} accepted the connection but {what} to {method}", " (camera hung or overloaded)"
        )

    def _closed(self, method: str, error: OSError | None) -> _Failed:
        cause = f" ({_os_error_text(error)})" if error is not None else ""
        return self._fail(
            ProbeKind.PROTOCOL_ERROR,
            f"{self._target.address} closed the connection before answering {method}{cause}",
        )

    def _too_large(self, method: str) -> _Failed:
        return self._fail(
            ProbeKind.PROTOCOL_ERROR,
            f"{self._target.address} sent an answer to {method} larger than {RESPONSE_LIMIT_BYTES // 1024} KiB",
        )


# --- authentication --------------------------------------------------------------------------------


def _scheme(challenge: str) -> str:
    return challenge.strip().split(" ", 1)[0]


def auth_params(challenge: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate`` challenge (``Digest realm="x", nonce="y"``), names in lower case."""
    _, _, rest = challenge.strip().partition(" ")
    params: dict[str, str] = {}
    for name, raw in _AUTH_PARAM.findall(rest):
        quoted = raw.startswith('"') and raw.endswith('"') and len(raw) >= 2
        params[name.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if quoted else raw
    return params


def digest_response(
    *,
    user: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
) -> str:
    """RFC 2617/7616's ``response`` for a Digest login (MD5, SHA-256 and their ``-sess`` forms)."""
    base = algorithm.upper().removesuffix("-SESS")
    if base == "MD5":

        def digest(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    elif base == "SHA-256":

        def digest(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

    else:
        raise ValueError(f"unsupported Digest algorithm {algorithm!r}")
    ha1 = digest(f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}")
    ha2 = digest(f"{method}:{uri}")
    if qop is None:
        return digest(f"{ha1}:{nonce}:{ha2}")
    return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _authorizer(challenges: list[str], target: _Target) -> Callable[[str], str] | None:
    """Builds the ``Authorization`` header for a method from the best challenge offered (Digest over Basic)."""
    user = target.user or ""
    for challenge in challenges:
        if _scheme(challenge).lower() != "digest":
            continue
        params = auth_params(challenge)
        algorithm = params.get("algorithm", "MD5")
        if algorithm.upper().removesuffix("-SESS") not in ("MD5", "SHA-256") or "nonce" not in params:
            continue
        offered_qop = [item.strip() for item in params.get("qop", "").split(",") if item.strip()]
        if offered_qop and "auth" not in offered_qop:
            continue
        return _DigestLogin(
            user, target.password, target.request_uri, params, algorithm, "auth" if offered_qop else None
        )
    if any(_scheme(challenge).lower() == "basic" for challenge in challenges):
        token = base64.b64encode(f"{user}:{target.password}".encode()).decode("ascii")
        return lambda _method: f"Basic {token}"
    return None


class _DigestLogin:
    """Digest ``Authorization`` headers for one challenge (the nonce count goes up with every request)."""

    def __init__(
        self, user: str, password: str, uri: str, params: dict[str, str], algorithm: str, qop: str | None
    ) -> None:
        self._user = user
        self._password = password
        self._uri = uri
        self._params = params
        self._algorithm = algorithm
        self._qop = qop
        self._count = 0
        self._cnonce = os.urandom(8).hex()

    def __call__(self, method: str) -> str:
        self._count += 1
        nc = f"{self._count:08x}"
        realm = self._params.get("realm", "")
        nonce = self._params["nonce"]
        response = digest_response(
            user=self._user,
            password=self._password,
            realm=realm,
            nonce=nonce,
            method=method,
            uri=self._uri,
            algorithm=self._algorithm,
            qop=self._qop,
            nc=nc,
            cnonce=self._cnonce,
        )
        fields = [
            f'username="{_quote(self._user)}"',
            f'realm="{_quote(realm)}"',
            f'nonce="{_quote(nonce)}"',
            f'uri="{_quote(self._uri)}"',
            f'response="{response}"',
        ]
        if "algorithm" in self._params:
            fields.append(f"algorithm={self._algorithm}")
        if "opaque" in self._params:
            fields.append(f'opaque="{_quote(self._params["opaque"])}"')
        if self._qop is not None:
            fields += [f"qop={self._qop}", f"nc={nc}", f'cnonce="{self._cnonce}"']
        return "Digest " + ", ".join(fields)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# --- SDP -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Media:
    kind: str
    payloads: list[str]
    rtpmap: dict[str, str]


def _media_sections(sdp: str) -> list[_Media]:
    sections: list[_Media] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            fields = line[2:].split()
            sections.append(_Media(fields[0].lower() if fields else "", fields[3:], {}))
        elif line.startswith("a=rtpmap:") and sections:
            payload, _, encoding = line.removeprefix("a=rtpmap:").partition(" ")
            sections[-1].rtpmap[payload.strip()] = encoding.strip().split("/", 1)[0].upper()
    return sections


# --- texts -----------------------------------------------------------------------------------------


def _shown(text: str) -> str:
    """A server's own text made fit for a one-line reason: printable and short."""
    text = _PRINTABLE.sub("?", text)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _os_error_text(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return error.strerror or str(error)
    return error.strerror or type(error).__name__
