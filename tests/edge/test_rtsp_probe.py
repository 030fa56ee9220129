"""The RTSP probe tells apart why a camera cannot be opened: against the real RTSP server (Basic auth,
paths, a closed port, a frozen server) and, for what that server does not do (Digest auth, other codecs,
broken answers), against a small fake camera in this process."""

import base64
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from edge.adapters.rtsp_probe import (
    RESPONSE_LIMIT_BYTES,
    ProbeKind,
    ProbeResult,
    auth_params,
    digest_response,
    media_kinds,
    probe_rtsp,
    supported_codec,
    video_codecs,
)
from protocol.camera_sources import redact_source
from simulators.infra.ports import free_port
from simulators.infra.rtsp import Credentials
from simulators.video_clips import Clip, entrance_clip
from tests.rtsp_server import RtspServerFactory, require_rtsp_server

TIMEOUT_S = 3.0
USER = "viewer"
PASSWORD = "s3cret-pw"
LOGIN = Credentials(USER, PASSWORD)


def assert_no_credentials(result: ProbeResult, *secrets: str) -> None:
    for secret in (PASSWORD, USER, "token", *secrets):
        assert secret not in result.reason, result.reason
    assert "\n" not in result.reason


# --- the real RTSP server (GStreamer, Basic auth) --------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    require_rtsp_server()
    return entrance_clip(tmp_path_factory.mktemp("clips") / "gate.mp4", count_in=1, fps=10)


def test_right_login_and_path_is_ok_with_h264(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path}, credentials=LOGIN)
    result = probe_rtsp(server.url("/cam1"), TIMEOUT_S)
    assert result.kind is ProbeKind.OK
    assert result.ok
    assert result.codec == "H264"
    assert result.status == 200
    assert_no_credentials(result)


def test_a_login_the_server_does_not_ask_for_is_not_used(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path})
    result = probe_rtsp(server.url("/cam1", credentials=LOGIN), TIMEOUT_S)
    assert (result.kind, result.codec) == (ProbeKind.OK, "H264")


def test_wrong_password_is_unauthorized(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path}, credentials=LOGIN)
    result = probe_rtsp(server.url("/cam1", credentials=Credentials(USER, "wrong-pw")), TIMEOUT_S)
    assert result.kind is ProbeKind.UNAUTHORIZED
    assert result.status == 401
    assert "rejected the login" in result.reason
    assert_no_credentials(result, "wrong-pw")


def test_no_login_on_a_protected_mount_is_unauthorized(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path}, credentials=LOGIN)
    result = probe_rtsp(server.url("/cam1", credentials=None), TIMEOUT_S)
    assert result.kind is ProbeKind.UNAUTHORIZED
    assert "requires a login" in result.reason
    assert "has none" in result.reason


def test_wrong_path_is_not_found(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path}, credentials=LOGIN)
    result = probe_rtsp(server.url("/cam2"), TIMEOUT_S)
    assert result.kind is ProbeKind.NOT_FOUND
    assert result.status == 404
    assert f"rtsp://127.0.0.1:{server.port}/cam2" in result.reason
    assert_no_credentials(result)


def test_a_closed_port_is_refused() -> None:
    result = probe_rtsp(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/cam1", TIMEOUT_S)
    assert result.kind is ProbeKind.REFUSED
    assert "refused" in result.reason
    assert_no_credentials(result)


def test_a_frozen_server_is_a_timeout(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path}, credentials=LOGIN)
    server.freeze()
    try:
        result = probe_rtsp(server.url("/cam1"), 1.0)
    finally:
        server.thaw()
    assert result.kind is ProbeKind.TIMEOUT
    assert "accepted the connection but sent no answer to OPTIONS within 1 s" in result.reason
    assert_no_credentials(result)


# --- a fake camera ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    uri: str
    headers: dict[str, str]


Answer = Callable[[Request], bytes | None]
"""What the fake camera sends for a request (None: close the connection)."""


@dataclass
class FakeCamera:
    """Accepts RTSP connections on 127.0.0.1 and answers each request with ``answer``."""

    answer: Answer
    requests: list[Request] = field(default_factory=list)
    sock: socket.socket = field(default_factory=socket.socket)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def url(self, path: str = "/stream1", login: str = f"{USER}:{PASSWORD}@") -> str:
        return f"rtsp://{login}127.0.0.1:{self.port}{path}"

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while not self.stopping.is_set():
                if b"\r\n\r\n" not in buffer:
                    try:
                        chunk = conn.recv(4096)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                    continue
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                method, uri, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = Request(method, uri, headers)
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    return
                try:
                    conn.sendall(reply)
                except OSError:
                    return


@pytest.fixture
def fake_camera() -> Iterator[Callable[[Answer], FakeCamera]]:
    cameras: list[tuple[FakeCamera, threading.Thread]] = []

    def make(answer: Answer) -> FakeCamera:
        camera = FakeCamera(answer)
        camera.sock.bind(("127.0.0.1", 0))
        camera.sock.listen(8)
        thread = threading.Thread(target=camera.serve, daemon=True)
        thread.start()
        cameras.append((camera, thread))
        return camera

    yield make
    for camera, thread in cameras:
        camera.stopping.set()
        thread.join(5)
        camera.sock.close()


def sdp(*media: str) -> str:
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=camera\r\nt=0 0\r\n" + "".join(media)


H264_VIDEO = "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n"
AAC_AUDIO = "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"


def reply(request: Request, status: str = "200 OK", headers: tuple[str, ...] = (), body: str = "") -> bytes:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {request.headers.get('cseq', '0')}", *headers]
    if body:
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(body.encode())}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def serving(body: str) -> Callable[[Request], bytes]:
    """A camera without a login that describes its stream with ``body``."""

    def answer(request: Request) -> bytes:
        if request.method == "DESCRIBE":
            return reply(request, body=body)
        return reply(request, headers=("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN",))

    return answer


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_camera(
    *, qop: bool, password: str = PASSWORD, offer_basic: bool = False, options_too: bool = False
) -> Answer:
    """A camera that wants a Digest login (checked here independently of the probe's own code)."""
    realm, nonce = "IP Camera(12345)", "a1b2c3d4e5f6"

    def valid(request: Request) -> bool:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', authorization))
        ha1 = md5(f"{USER}:{realm}:{password}")
        ha2 = md5(f"{request.method}:{fields.get('uri')}")
        if qop:
            expected = md5(f"{ha1}:{nonce}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
        else:
            expected = md5(f"{ha1}:{nonce}:{ha2}")
        return (
            fields.get("username") == USER and fields.get("uri") == request.uri and fields.get("response") == expected
        )

    def answer(request: Request) -> bytes:
        if (request.method == "DESCRIBE" or options_too) and not valid(request):
            challenge = f'WWW-Authenticate: Digest realm="{realm}", nonce="{nonce}"' + (', qop="auth"' if qop else "")
            challenges = (f'WWW-Authenticate: Basic realm="{realm}"', challenge) if offer_basic else (challenge,)
            return reply(request, "401 Unauthorized", challenges)
        return serving(sdp(H264_VIDEO))(request)

    return answer


@pytest.mark.parametrize("qop", [False, True], ids=["rfc2069", "qop-auth"])
def test_digest_login(fake_camera: Callable[[Answer], FakeCamera], qop: bool) -> None:
    camera = fake_camera(digest_camera(qop=qop))
    result = probe_rtsp(camera.url(), TIMEOUT_S)
    assert (result.kind, result.codec) == (ProbeKind.OK, "H264")
    described = [request for request in camera.requests if request.method == "DESCRIBE"]
    assert len(described) == 2  # challenged once, answered once
    assert described[1].headers["authorization"].startswith("Digest ")


def test_digest_is_preferred_over_basic(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    camera = fake_camera(digest_camera(qop=True, offer_basic=True))
    assert probe_rtsp(camera.url(), TIMEOUT_S).kind is ProbeKind.OK


def test_wrong_digest_password_is_unauthorized_after_one_try(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    camera = fake_camera(digest_camera(qop=False, password="the-real-one"))
    result = probe_rtsp(camera.url(), TIMEOUT_S)
    assert result.kind is ProbeKind.UNAUTHORIZED
    assert "rejected the login" in result.reason
    assert [request.method for request in camera.requests] == ["OPTIONS", "DESCRIBE", "DESCRIBE"]


def test_a_login_for_options_too(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    camera = fake_camera(digest_camera(qop=True, options_too=True))
    result = probe_rtsp(camera.url(), TIMEOUT_S)
    assert result.kind is ProbeKind.OK
    assert [request.method for request in camera.requests] == ["OPTIONS", "OPTIONS", "DESCRIBE"]
    assert "authorization" in camera.requests[2].headers  # the login goes with every later request


def test_basic_login(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def answer(request: Request) -> bytes:
        if request.method == "DESCRIBE" and request.headers.get("authorization") != f"Basic {token}":
            return reply(request, "401 Unauthorized", ('WWW-Authenticate: Basic realm="cam"',))
        return serving(sdp(H264_VIDEO))(request)

    camera = fake_camera(answer)
    assert probe_rtsp(camera.url(), TIMEOUT_S).kind is ProbeKind.OK
    # Percent-encoded characters of the login are decoded before they are sent.
    camera_2 = fake_camera(answer)
    assert probe_rtsp(camera_2.url(login=f"{USER}:s3cret%2Dpw@"), TIMEOUT_S).kind is ProbeKind.OK


def test_an_unknown_login_scheme_is_a_protocol_error(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    camera = fake_camera(lambda request: reply(request, "401 Unauthorized", ("WWW-Authenticate: NTLM",)))
    result = probe_rtsp(camera.url(), TIMEOUT_S)
    assert result.kind is ProbeKind.PROTOCOL_ERROR
    assert "NTLM" in result.reason


def test_the_query_is_sent_but_never_shown_and_the_login_never_in_the_request_line(
    fake_camera: Callable[[Answer], FakeCamera],
) -> None:
    camera = fake_camera(lambda request: reply(request, "404 Not Found"))
    result = probe_rtsp(camera.url("/live?channel=1&token=abc123"), TIMEOUT_S)
    assert result.kind is ProbeKind.NOT_FOUND
    assert result.reason.startswith(f"rtsp://127.0.0.1:{camera.port}/live?...: ")
    assert_no_credentials(result, "abc123", "channel")
    assert {request.uri for request in camera.requests} == {
        f"rtsp://127.0.0.1:{camera.port}/live?channel=1&token=abc123"
    }


@pytest.mark.parametrize(
    ("body", "codec"),
    [
        (sdp(H264_VIDEO), "H264"),
        (sdp(AAC_AUDIO, "m=video 0 RTP/AVP 98\r\na=rtpmap:98 H265/90000\r\n"), "H265"),
        (sdp("m=video 0 RTP/AVP 99\r\na=rtpmap:99 hevc/90000\r\n"), "H265"),
        (sdp("m=video 0 RTP/AVP 26\r\n"), "MJPEG"),  # a static payload type, no rtpmap
        (sdp("m=video 0 RTP/AVP 100 96\r\na=rtpmap:100 VP8/90000\r\na=rtpmap:96 H264/90000\r\n"), "H264"),
    ],
    ids=["h264", "h265-after-audio", "hevc", "mjpeg-static", "second-format"],
)
def test_supported_codecs(fake_camera: Callable[[Answer], FakeCamera], body: str, codec: str) -> None:
    result = probe_rtsp(fake_camera(serving(body)).url(), TIMEOUT_S)
    assert (result.kind, result.codec) == (ProbeKind.OK, codec)
    assert codec in result.reason


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (sdp(AAC_AUDIO), "no video track (audio only)"),
        (sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n", AAC_AUDIO), "video in VP8 only"),
        (sdp("m=video 0 RTP/AVP 34\r\n"), "video in H263 only"),
    ],
    ids=["audio-only", "vp8", "h263-static"],
)
def test_unsupported_codecs(fake_camera: Callable[[Answer], FakeCamera], body: str, found: str) -> None:
    result = probe_rtsp(fake_camera(serving(body)).url(), TIMEOUT_S)
    assert result.kind is ProbeKind.UNSUPPORTED_CODEC
    assert result.codec is None
    assert found in result.reason
    assert "H.264, H.265 or MJPEG" in result.reason


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("503 Service Unavailable", "answered DESCRIBE with 503 Service Unavailable"),
        ("403 Forbidden", "forbids this login the stream (403 Forbidden)"),
        ("454 Session Not Found", "answered DESCRIBE with 454 Session Not Found"),
    ],
)
def test_other_statuses_are_protocol_errors_with_the_code(
    fake_camera: Callable[[Answer], FakeCamera], status: str, expected: str
) -> None:
    def answer(request: Request) -> bytes:
        return reply(request, status) if request.method == "DESCRIBE" else reply(request)

    result = probe_rtsp(fake_camera(answer).url(), TIMEOUT_S)
    assert result.kind is ProbeKind.PROTOCOL_ERROR
    assert result.status == int(status.split(maxsplit=1)[0])
    assert expected in result.reason


def test_a_describe_without_sdp_is_a_protocol_error(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    result = probe_rtsp(fake_camera(serving("")).url(), TIMEOUT_S)
    assert result.kind is ProbeKind.PROTOCOL_ERROR
    assert "without a session description" in result.reason


def test_an_http_server_is_a_protocol_error(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    camera = fake_camera(lambda _request: b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    result = probe_rtsp(camera.url(), TIMEOUT_S)
    assert result.kind is ProbeKind.PROTOCOL_ERROR
    assert "did not answer in RTSP" in result.reason
    assert "HTTP/1.1 400 Bad Request" in result.reason


def test_a_closed_connection_is_a_protocol_error(fake_camera: Callable[[Answer], FakeCamera]) -> None:
    result = probe_rtsp(fake_camera(lambda _request: None).url(), TIMEOUT_S)
    assert result.kind is ProbeKind.PROTOCOL_ERROR
    assert "closed the connection before answering OPTIONS" in result.reason


@pytest.mark.parametrize(
    "answer",
    [
        lambda request: reply(request, headers=tuple(f"X-Padding-{i}: {'x' * 100}" for i in range(1_000))),
        lambda request: reply(request, headers=(f"Content-Length: {RESPONSE_LIMIT_BYTES}",)) + b"v=0\r\n",
    ],
    ids=["endless-headers", "huge-body"],
)
def test_answers_are_read_up_to_the_limit(fake_camera: Callable[[Answer], FakeCamera], answer: Answer) -> None:
    result = probe_rtsp(fake_camera(answer).url(), TIMEOUT_S)
    assert result.kind is ProbeKind.PROTOCOL_ERROR
    assert "larger than 64 KiB" in result.reason


def test_a_dripping_answer_times_out_within_the_total_time() -> None:
    """One byte every 50 ms never ends an answer: the probe's deadline is for all of it, not per read."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        done = threading.Event()

        def drip() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"RTSP/1.0 200 OK\r\n")
                while not done.wait(0.05):
                    try:
                        conn.sendall(b"X")
                    except OSError:
                        return

        thread = threading.Thread(target=drip, daemon=True)
        thread.start()
        try:
            result = probe_rtsp(f"rtsp://127.0.0.1:{port}/x", 0.5)
        finally:
            done.set()
            thread.join(5)
    assert result.kind is ProbeKind.TIMEOUT
    assert "did not finish its answer to OPTIONS within 0.5 s" in result.reason


def test_a_connection_that_is_never_accepted_times_out() -> None:
    """A listener whose accept queue is full drops further SYNs (Linux): connecting hangs, as to a dead host."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers: list[socket.socket] = []
        try:
            while len(fillers) < 8:
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(0.3)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            else:
                pytest.skip("the accept queue never filled")
            result = probe_rtsp(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/x", 0.5)
        finally:
            for filler in fillers:
                filler.close()
    assert result.kind is ProbeKind.TIMEOUT
    assert result.reason.startswith(f"no connection to 127.0.0.1:{port} within 0.5 s")
    assert_no_credentials(result)


def test_an_unknown_host_is_unreachable() -> None:
    started = time.monotonic()
    result = probe_rtsp(f"rtsp://{USER}:{PASSWORD}@camera.invalid/stream1", 2.0)
    assert result.kind is ProbeKind.UNREACHABLE
    assert "cannot resolve the host name 'camera.invalid'" in result.reason
    assert_no_credentials(result)
    assert time.monotonic() - started < 30  # a hanging resolver is not waited for


@pytest.mark.parametrize(
    ("url", "kind", "reason"),
    [
        ("rtsps://u:p@cam/x", ProbeKind.NOT_PROBED, "rtsps://cam/x: RTSP over TLS (rtsps://) is not probed"),
        ("http://u:p@cam/snap.jpg?k=v", ProbeKind.NOT_PROBED, "http://cam/snap.jpg?...: not an rtsp:// URL"),
        ("/var/lib/outpost/demo.mp4", ProbeKind.NOT_PROBED, "/var/lib/outpost/demo.mp4: not an rtsp:// URL"),
        ("rtsp://u:p@cam:99999/x", ProbeKind.INVALID_URL, "rtsp://cam:99999/x: the port is not a number"),
        ("rtsp://u:p@/x", ProbeKind.INVALID_URL, "rtsp:///x: the URL names no host"),
        ("rtsp://u:p@[::1/x", ProbeKind.INVALID_URL, "the rtsp:// URL does not parse"),
    ],
)
def test_urls_that_are_not_probed(url: str, kind: ProbeKind, reason: str) -> None:
    result = probe_rtsp(url, TIMEOUT_S)
    assert result.kind is kind
    assert result.reason.startswith(reason)
    assert "u:p" not in result.reason


# --- the parts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "rtsp://admin:pa%40ss@192.0.2.10:554/Streaming/Channels/101?transport=tcp",
            "rtsp://192.0.2.10:554/Streaming/Channels/101?...",
        ),
        ("rtsp://admin@cam.local/live", "rtsp://cam.local/live"),
        ("rtsp://u:p@[fe80::1]:8554/x", "rtsp://[fe80::1]:8554/x"),
        ("rtsp://u:p@cam:99999/x", "rtsp://cam:99999/x"),
        ("/dev/video0", "/dev/video0"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact_source(url) == shown


def test_sdp_parsing() -> None:
    text = sdp(AAC_AUDIO, "m=video 0 RTP/AVP 96 26\r\na=rtpmap:96 H265/90000\r\n", "m=application 0 RTP/AVP 107\r\n")
    assert media_kinds(text) == ["audio", "video", "application"]
    assert video_codecs(text) == ["H265", "MJPEG"]
    assert supported_codec(text) == "H265"
    assert supported_codec(sdp(AAC_AUDIO)) is None
    assert video_codecs(sdp("m=video 0 RTP/AVP 120\r\n")) == ["payload type 120"]
    assert media_kinds("not an SDP at all") == []


def test_digest_response_of_rfc_2617() -> None:
    """The worked example of RFC 2617, section 3.5."""
    assert (
        digest_response(
            user="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )
    with pytest.raises(ValueError, match="unsupported Digest algorithm"):
        digest_response(user="u", password="p", realm="r", nonce="n", method="DESCRIBE", uri="/", algorithm="SHA-1")


def test_auth_params() -> None:
    challenge = 'Digest realm="IP \\"Cam\\"", nonce="abc,def", algorithm=MD5, qop="auth,auth-int", stale=FALSE'
    assert auth_params(challenge) == {
        "realm": 'IP "Cam"',
        "nonce": "abc,def",
        "algorithm": "MD5",
        "qop": "auth,auth-int",
        "stale": "FALSE",
    }


def test_probe_kinds_are_strings_for_logs() -> None:
    assert str(ProbeKind.UNSUPPORTED_CODEC) == "unsupported_codec"
    assert ProbeKind("not_found") is ProbeKind.NOT_FOUND


def test_results_are_frozen() -> None:
    result = ProbeResult(ProbeKind.OK, "fine", codec="H264")
    with pytest.raises(AttributeError):
        result.kind = ProbeKind.TIMEOUT  # type: ignore[misc]
