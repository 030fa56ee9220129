"""A deployment's own webhook as a channel: every step it asked for is POSTed as an AlertNotification.

The body is the :class:`~protocol.notifications.AlertNotification` as JSON, sent with its
``notification_id`` (the outbox key, the same on every attempt) as the ``Idempotency-Key`` header and
signed like the fleet's requests to the governance platform (:mod:`protocol.request_signing`: HMAC-SHA256
over the timestamp, the target as sent and the body), afresh on every attempt, so a receiver holding the
secret verifies it with :class:`~protocol.request_signing.RequestVerifier` and a retry is never refused
as a replay. Redirects are not followed: the signature covers the path it was sent to. Idle connections are let
go after ``webhook.keepalive_expiry_s``, and a notification meeting one the receiver closed while idle is sent
again at once on a new one (:mod:`fleet.pooled_http`; the receiver de-duplicates on the Idempotency-Key).

httpx errors and answers are translated here: network failures, timeouts, 408, 429 and 5xx become
:class:`~fleet.errors.ChannelUnavailableError` (retry); 401, 403, 404, 410 and redirects mean the URL or
the secret is wrong (:class:`~fleet.errors.ChannelSettingsError`: keep the message, fix the settings);
any other refusal is about this message (:class:`~fleet.errors.ChannelRejectedError`: a dead letter).
"""

import ssl
from collections.abc import Callable
from typing import Final

import httpx

from fleet.alerts.channels.base import Delivery
from fleet.alerts.channels.notification import notification_for
from fleet.alerts.outbox import Route, notify_route
from fleet.errors import ChannelRejectedError, ChannelSettingsError, ChannelUnavailableError
from fleet.pooled_http import pool_limits, send_once_more_if_stale
from fleet.settings import WebhookSettings
from fleet.signed_requests import signed_attempts
from protocol.clock import utc_now_ms

WEBHOOK_CHANNEL: Final = "webhook"
_RETRIED: Final = frozenset({408, 429})
_REFUSING_THE_FLEET: Final = frozenset({401, 403, 404, 410})


class WebhookChannel:
    def __init__(
        self,
        settings: WebhookSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        clock: Callable[[], int] = utc_now_ms,
    ) -> None:
        if settings.url is None or settings.secret is None:
            raise ValueError("WebhookChannel needs webhook.url and webhook.secret")
        self._url = str(settings.url)
        self._shown = f"{settings.url.scheme}://{settings.url.host}:{settings.url.port}{settings.url.path or ''}"
        """The URL as errors and logs show it: without a query or user info, which may hold a token."""
        self._secret = settings.secret.get_secret_value()
        self._route = notify_route(WEBHOOK_CHANNEL, settings.steps)
        self._clock = clock
        self._http = httpx.AsyncClient(
            timeout=settings.timeout_s,
            verify=_verification(settings),
            transport=transport,
            follow_redirects=False,
            limits=pool_limits(settings.keepalive_expiry_s),
        )

    @property
    def name(self) -> str:
        return WEBHOOK_CHANNEL

    @property
    def route(self) -> Route:
        return self._route

    async def deliver(self, delivery: Delivery) -> str | None:
        """POST the notification; the receiver's status code once it took it (2xx)."""
        body = notification_for(delivery).model_dump_json().encode()
        attempt = signed_attempts(self._http, self._url, body, key=delivery.key, secret=self._secret, clock=self._clock)
        try:
            response = await send_once_more_if_stale(self._http, attempt, f"webhook {self._shown}")
        except httpx.HTTPError as exc:
            raise ChannelUnavailableError(f"webhook {self._shown} unreachable: {exc!r}"[:300]) from exc
        status = response.status_code
        if 200 <= status < 300:
            return f"http {status}"
        answer = f"{status} {response.text[:200]}".rstrip()
        if status >= 500 or status in _RETRIED:
            raise ChannelUnavailableError(f"webhook {self._shown} answered {answer}")
        if status in _REFUSING_THE_FLEET or 300 <= status < 400:
            raise ChannelSettingsError(
                f"webhook {self._shown} answered {answer}: check OUTPOST_FLEET_WEBHOOK__URL and __SECRET"
            )
        raise ChannelRejectedError(f"webhook {self._shown} refused the notification: {answer}")

    async def close(self) -> None:
        await self._http.aclose()


def _verification(settings: WebhookSettings) -> ssl.SSLContext | bool:
    """How the receiver's certificate is checked: against ``ca_file``, against the system's CAs, or not at all
    (``verify_tls`` off, for a development receiver)."""
    if settings.ca_file is None:
        return settings.verify_tls
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except OSError as exc:  # ssl.SSLError is one
        raise ChannelSettingsError(f"webhook.ca_file {settings.ca_file} cannot be loaded: {exc}") from exc
