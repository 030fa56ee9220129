"""The enrollment request to the fleet: one HTTPS POST with the standard library (a gateway install carries no
HTTP client library). The fleet's certificate is verified against the system's CAs or ``ca_file``; plain
HTTP is refused unless asked for (development), and redirects are never followed (a redirect could take
the token and the credentials to another host, or off TLS)."""

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from edge import AGENT_VERSION
from edge.errors import EnrollmentError, EnrollmentRefusedError, FleetUnreachableError
from protocol.enrollment import ENROLL_PATH, EnrollmentGrant, EnrollmentRequest

MAX_ANSWER_BYTES: Final = 1024 * 1024
_REFUSALS: Final = frozenset({400, 401, 403, 404, 409, 422})


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


def enroll_url(fleet_url: str, *, allow_http: bool) -> str:
    """``{fleet_url}/enroll``; raises :class:`EnrollmentError` for a URL that is not https (or http if allowed)."""
    parts = urlsplit(fleet_url)
    if parts.scheme == "http" and not allow_http:
        raise EnrollmentError(
            f"refusing to enroll over plain HTTP ({fleet_url}): the token and the broker password would travel "
            "in clear. Use the fleet's https:// URL (--insecure-http is for development only)"
        )
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise EnrollmentError(f"the fleet URL must be https://host[:port][/path], not {fleet_url!r}")
    return fleet_url.rstrip("/") + ENROLL_PATH


def request_enrollment(
    fleet_url: str,
    request: EnrollmentRequest,
    *,
    ca_file: Path | None = None,
    allow_http: bool = False,
    timeout_s: float = 30.0,
) -> EnrollmentGrant:
    """POST ``request`` to the fleet and return its grant.

    Raises :class:`EnrollmentRefusedError` when the fleet refuses (the message is the fleet's reason),
    :class:`FleetUnreachableError` when it cannot be reached, is not trusted or fails, and
    :class:`EnrollmentError` for a URL or CA file that cannot be used or an answer that is not a grant.
    """
    url = enroll_url(fleet_url, allow_http=allow_http)
    handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(ca_file)))
    opener = urllib.request.build_opener(*handlers)
    http_request = urllib.request.Request(  # noqa: S310 - the scheme was checked above
        url,
        data=request.model_dump_json().encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"outpost-gateway/{AGENT_VERSION}",
        },
        method="POST",
    )
    try:
        with opener.open(http_request, timeout=timeout_s) as response:
            body = response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        detail = _detail(exc.read(MAX_ANSWER_BYTES))
        if exc.code in _REFUSALS:
            raise EnrollmentRefusedError(f"the fleet refused the enrollment ({exc.code}): {detail}") from None
        raise FleetUnreachableError(f"the fleet at {fleet_url} answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise FleetUnreachableError(
                f"the fleet's certificate at {fleet_url} is not trusted ({exc.reason.verify_message}): "
                "give the CA that signed it with --fleet-ca"
            ) from None
        raise FleetUnreachableError(f"cannot reach the fleet at {fleet_url}: {exc.reason}") from None
    except (OSError, TimeoutError) as exc:
        raise FleetUnreachableError(f"cannot reach the fleet at {fleet_url}: {exc}") from None
    try:
        return EnrollmentGrant.model_validate_json(body)
    except ValidationError as exc:
        raise EnrollmentError(f"the fleet's answer is not an enrollment grant this agent understands: {exc}") from None


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise EnrollmentError(f"cannot load the fleet's CA from --fleet-ca {ca_file}: {exc}") from None


def _detail(body: bytes) -> str:
    """The ``detail`` of the fleet's JSON error, or the start of whatever it sent."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str):
        return detail
    if detail is not None:
        return json.dumps(detail)[:500]
    return body.decode("utf-8", "replace")[:500] or "(no detail)"
