"""HMAC request signing: a signed request verifies inside the window; any change to it does not."""

import hashlib
import hmac

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from protocol.errors import (
    BadRequestSignatureError,
    ReplayedRequestError,
    RequestSignatureError,
    RequestTimestampError,
    SigningSecretError,
    UnsignedRequestError,
)
from protocol.request_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RequestVerifier,
    asgi_request_target,
    sign,
    signature_headers,
    verify,
)

NOW_MS = 1_700_000_000_000
WINDOW_S = 300.0

secrets = st.binary(min_size=1, max_size=64)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
paths = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80).map(lambda s: "/" + s)
bodies = st.binary(max_size=512)
timestamps = st.integers(min_value=0, max_value=10**15)
skews_ms = st.integers(min_value=-int(WINDOW_S * 1000), max_value=int(WINDOW_S * 1000))


@given(secret=secrets, method=methods, path=paths, body=bodies, timestamp=timestamps, skew=skews_ms)
def test_a_signed_request_verifies_within_the_window(
    secret: bytes, method: str, path: str, body: bytes, timestamp: int, skew: int
) -> None:
    headers = signature_headers(secret, method, path, timestamp, body)

    verified = verify(secret, headers, method, path, body, now_ms=timestamp + skew, replay_window_s=WINDOW_S)

    assert verified.timestamp_ms == timestamp
    assert verified.secret_index == 0


@given(secret=secrets, path=paths, body=bodies, other=bodies)
def test_a_changed_body_fails(secret: bytes, path: str, body: bytes, other: bytes) -> None:
    assume(body != other)
    headers = signature_headers(secret, "POST", path, NOW_MS, body)

    with pytest.raises(BadRequestSignatureError):
        verify(secret, headers, "POST", path, other, NOW_MS)


@given(secret=secrets, path=paths, other=paths, body=bodies)
def test_a_changed_path_fails(secret: bytes, path: str, other: str, body: bytes) -> None:
    assume(path != other)
    headers = signature_headers(secret, "POST", path, NOW_MS, body)

    with pytest.raises(BadRequestSignatureError):
        verify(secret, headers, "POST", other, body, NOW_MS)


@given(secret=secrets, method=methods, other=methods, body=bodies)
def test_a_changed_method_fails(secret: bytes, method: str, other: str, body: bytes) -> None:
    assume(method != other)
    headers = signature_headers(secret, method, "/api/v1/cases", NOW_MS, body)

    with pytest.raises(BadRequestSignatureError):
        verify(secret, headers, other, "/api/v1/cases", body, NOW_MS)


@given(secret=secrets, body=bodies, shift=st.integers(min_value=1, max_value=int(WINDOW_S * 1000)), sign_=st.booleans())
def test_a_changed_timestamp_fails_even_inside_the_window(secret: bytes, body: bytes, shift: int, sign_: bool) -> None:
    headers = signature_headers(secret, "POST", "/api/v1/cases", NOW_MS, body)
    headers[TIMESTAMP_HEADER] = str(NOW_MS + (shift if sign_ else -shift))

    with pytest.raises(BadRequestSignatureError):
        verify(secret, headers, "POST", "/api/v1/cases", body, NOW_MS)


@given(secret=secrets, other=secrets, path=paths, body=bodies)
def test_another_secret_fails(secret: bytes, other: bytes, path: str, body: bytes) -> None:
    assume(secret != other)
    headers = signature_headers(secret, "POST", path, NOW_MS, body)

    with pytest.raises(BadRequestSignatureError):
        verify(other, headers, "POST", path, body, NOW_MS)


@given(
    secret=secrets,
    body=bodies,
    beyond_ms=st.integers(min_value=1, max_value=10**9),
    late=st.booleans(),
)
def test_a_valid_signature_outside_the_window_fails(secret: bytes, body: bytes, beyond_ms: int, late: bool) -> None:
    headers = signature_headers(secret, "POST", "/api/v1/cases", NOW_MS, body)
    offset = int(WINDOW_S * 1000) + beyond_ms
    now = NOW_MS + offset if late else NOW_MS - offset

    with pytest.raises(RequestTimestampError, match="replay window"):
        verify(secret, headers, "POST", "/api/v1/cases", body, now, replay_window_s=WINDOW_S)


@given(old=secrets, new=secrets, body=bodies)
def test_a_request_signed_with_the_previous_key_verifies_during_rotation(old: bytes, new: bytes, body: bytes) -> None:
    assume(old != new)
    headers = signature_headers(old, "POST", "/api/v1/cases", NOW_MS, body)

    verified = verify([new, old], headers, "POST", "/api/v1/cases", body, NOW_MS)

    assert verified.secret_index == 1
    with pytest.raises(BadRequestSignatureError):
        verify([new], headers, "POST", "/api/v1/cases", body, NOW_MS)


def test_the_signature_covers_scheme_timestamp_method_target_and_body_digest() -> None:
    """Pins the canonical form, so the other side of the contract can be written from this test."""
    body = b'{"alert_id": "x"}'
    canonical = b"v1\n1700000000000\nPOST\n/api/v1/cases?x=%20y\n" + hashlib.sha256(body).hexdigest().encode()
    expected = hmac.new(b"shared-secret", canonical, hashlib.sha256).hexdigest()

    assert sign("shared-secret", "POST", "/api/v1/cases?x=%20y", NOW_MS, body) == expected
    assert signature_headers("shared-secret", "POST", "/api/v1/cases?x=%20y", NOW_MS, body) == {
        TIMESTAMP_HEADER: "1700000000000",
        SIGNATURE_HEADER: f"v1={expected}",
    }


def test_header_names_are_case_insensitive_and_several_signatures_may_be_offered() -> None:
    good = signature_headers("k", "POST", "/p", NOW_MS, b"")
    headers = {
        TIMESTAMP_HEADER.lower(): good[TIMESTAMP_HEADER],
        SIGNATURE_HEADER.lower(): f"v2=whatever, v1={'0' * 64}, {good[SIGNATURE_HEADER]}",
    }

    assert verify("k", headers, "POST", "/p", b"", NOW_MS).timestamp_ms == NOW_MS


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_a_missing_header_means_unsigned(missing: str) -> None:
    headers = signature_headers("k", "POST", "/p", NOW_MS, b"")
    del headers[missing]

    with pytest.raises(UnsignedRequestError, match=missing) as raised:
        verify("k", headers, "POST", "/p", b"", NOW_MS)
    assert raised.value.reason == "unsigned_request"


@pytest.mark.parametrize(
    ("timestamp", "signature", "error", "reason"),
    [
        ("yesterday", "v1=" + "0" * 64, RequestTimestampError, "timestamp_outside_window"),
        ("-5", "v1=" + "0" * 64, RequestTimestampError, "timestamp_outside_window"),
        (str(NOW_MS), "v1=abc", BadRequestSignatureError, "bad_signature"),
        (str(NOW_MS), "v1=" + "G" * 64, BadRequestSignatureError, "bad_signature"),
        (str(NOW_MS), "sha256=" + "0" * 64, BadRequestSignatureError, "bad_signature"),
    ],
    ids=["words", "negative", "short-hex", "not-hex", "no-v1"],
)
def test_malformed_headers_are_refused_with_a_reason(
    timestamp: str, signature: str, error: type[RequestSignatureError], reason: str
) -> None:
    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature}

    with pytest.raises(error) as raised:
        verify("k", headers, "POST", "/p", b"", NOW_MS)
    assert raised.value.reason == reason


def test_empty_or_absent_secrets_are_refused() -> None:
    headers = signature_headers("k", "POST", "/p", NOW_MS, b"")
    with pytest.raises(SigningSecretError):
        sign("", "POST", "/p", NOW_MS, b"")
    with pytest.raises(SigningSecretError):
        verify([], headers, "POST", "/p", b"", NOW_MS)
    with pytest.raises(SigningSecretError):
        RequestVerifier(["k", b""])


@pytest.mark.parametrize(("method", "path"), [("post", "/p"), ("POST", "p"), ("POST", "/a b"), ("POST", "/a\nb")])
def test_signing_refuses_what_is_not_a_request_line(method: str, path: str) -> None:
    with pytest.raises(ValueError):
        sign("k", method, path, NOW_MS, b"")


def test_the_verifier_refuses_the_same_signed_request_twice() -> None:
    verifier = RequestVerifier("k", replay_window_s=WINDOW_S)
    headers = signature_headers("k", "POST", "/p", NOW_MS, b"{}")

    verifier.verify(headers, "POST", "/p", b"{}", NOW_MS)
    with pytest.raises(ReplayedRequestError) as raised:
        verifier.verify(headers, "POST", "/p", b"{}", NOW_MS + 1_000)
    assert raised.value.reason == "replayed_request"

    resigned = signature_headers("k", "POST", "/p", NOW_MS + 1, b"{}")
    assert verifier.verify(resigned, "POST", "/p", b"{}", NOW_MS + 1_000).timestamp_ms == NOW_MS + 1


def test_an_old_replay_is_refused_by_the_window_after_the_verifier_forgot_it() -> None:
    verifier = RequestVerifier("k", replay_window_s=WINDOW_S)
    old = signature_headers("k", "POST", "/p", NOW_MS, b"")
    verifier.verify(old, "POST", "/p", b"", NOW_MS)
    later = NOW_MS + int(WINDOW_S * 1000) + 1

    verifier.verify(signature_headers("k", "POST", "/p", later, b""), "POST", "/p", b"", later)

    with pytest.raises(RequestTimestampError):
        verifier.verify(old, "POST", "/p", b"", later)


def test_asgi_request_target_keeps_the_query_and_the_encoding() -> None:
    assert asgi_request_target(b"/api/v1/cases/CASE-1/updates") == "/api/v1/cases/CASE-1/updates"
    assert asgi_request_target(b"/a%20b", b"x=1&y=%2F") == "/a%20b?x=1&y=%2F"
