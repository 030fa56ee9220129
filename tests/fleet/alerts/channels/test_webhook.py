"""The webhook channel POSTs signed notifications to a real receiver and tells the worker what its answer
means: taken, try again later, fix the settings, or never."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.alerts.channels.webhook import WebhookChannel
from fleet.errors import ChannelRejectedError, ChannelSettingsError, ChannelUnavailableError
from fleet.settings import WebhookSettings
from protocol.notifications import AlertStep
from simulators.infra.certificates import write_certificates
from tests.fleet.alerts.channels.deliveries import ALERT_ID, alert_row, delivery
from tests.fleet.alerts.channels.receiver import HOOK_PATH, RECEIVER_SECRET, WebhookReceiver, webhook_receiver


def settings_for(url: str, secret: str = RECEIVER_SECRET, **changes: object) -> WebhookSettings:
    return WebhookSettings.model_validate({"url": AnyHttpUrl(url), "secret": SecretStr(secret), **changes})


@pytest.fixture
async def channel(receiver: WebhookReceiver) -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(settings_for(receiver.url))
    yield webhook
    await webhook.close()


async def test_a_notification_reaches_the_receiver_signed_with_its_idempotency_key(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    sent = delivery("raise", reason="panic button panic-1 pressed")

    receipt = await channel.deliver(sent)

    assert receipt == "http 204"
    assert receiver.refused == []
    [taken] = receiver.received
    assert taken.idempotency_key == sent.key
    assert taken.notification.notification_id == uuid.UUID(sent.key)
    assert (taken.notification.alert_id, taken.notification.step) == (uuid.UUID(ALERT_ID), AlertStep.RAISE)


async def test_a_retry_repeats_the_idempotency_key_and_is_signed_afresh(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500]
    first = delivery("cancel", reason="false alarm")

    with pytest.raises(ChannelUnavailableError, match="500"):
        await channel.deliver(first)
    await channel.deliver(delivery("cancel", reason="false alarm", key=first.key, attempt=2))

    failed, taken = receiver.received
    assert failed.idempotency_key == taken.idempotency_key == first.key
    assert failed.notification == taken.notification
    assert failed.signature != taken.signature  # the receiver refuses a replayed signature: none was needed
    assert receiver.refused == []
    assert receiver.accepted == [taken.notification]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, ChannelUnavailableError),
        (503, ChannelUnavailableError),
        (429, ChannelUnavailableError),
        (408, ChannelUnavailableError),
        (403, ChannelSettingsError),
        (410, ChannelSettingsError),
        (422, ChannelRejectedError),
        (400, ChannelRejectedError),
    ],
)
async def test_what_the_receiver_answers_decides_retry_settings_or_dead_letter(
    channel: WebhookChannel, receiver: WebhookReceiver, status: int, error: type[Exception]
) -> None:
    receiver.answers = [status]

    with pytest.raises(error, match=str(status)):
        await channel.deliver(delivery())


async def test_a_wrong_secret_is_refused_by_the_receiver_and_is_a_settings_problem(receiver: WebhookReceiver) -> None:
    channel = WebhookChannel(settings_for(receiver.url, secret="not-the-receivers-secret"))
    try:
        with pytest.raises(ChannelSettingsError, match="401"):
            await channel.deliver(delivery())
    finally:
        await channel.close()

    assert receiver.refused == ["bad_signature"]
    assert receiver.received == []


async def test_a_wrong_path_is_a_settings_problem(receiver: WebhookReceiver) -> None:
    channel = WebhookChannel(settings_for(receiver.url.replace(HOOK_PATH, "/hooks/elsewhere")))
    try:
        with pytest.raises(ChannelSettingsError, match="404"):
            await channel.deliver(delivery())
    finally:
        await channel.close()


async def test_a_receiver_too_slow_to_answer_is_unavailable(receiver: WebhookReceiver) -> None:
    receiver.held = asyncio.Event()
    channel = WebhookChannel(settings_for(receiver.url, timeout_s=0.2))
    try:
        with pytest.raises(ChannelUnavailableError, match="unreachable"):
            await channel.deliver(delivery())
    finally:
        await channel.close()


async def test_a_receiver_that_is_not_listening_is_unavailable() -> None:
    async with webhook_receiver() as stopped:
        url = stopped.url
    channel = WebhookChannel(settings_for(url))
    try:
        with pytest.raises(ChannelUnavailableError, match="unreachable"):
            await channel.deliver(delivery())
    finally:
        await channel.close()


async def test_an_alert_that_breaks_the_contract_is_never_sent(
    channel: WebhookChannel, receiver: WebhookReceiver
) -> None:
    with pytest.raises(ChannelRejectedError):
        await channel.deliver(delivery(alert=alert_row(evidence={"Not A Metric": 1})))

    assert receiver.received == []


async def test_an_https_receiver_is_posted_to_only_when_its_certificate_is_trusted(tmp_path: Path) -> None:
    certificates = write_certificates(tmp_path / "tls")
    async with webhook_receiver(
        tls_cert_file=certificates.server_cert, tls_key_file=certificates.server_key
    ) as receiver:
        untrusting = WebhookChannel(settings_for(receiver.url))
        trusting = WebhookChannel(settings_for(receiver.url, ca_file=certificates.ca_cert))
        try:
            with pytest.raises(ChannelUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.deliver(delivery())
            assert await trusting.deliver(delivery()) == "http 204"
        finally:
            await untrusting.close()
            await trusting.close()

    assert len(receiver.accepted) == 1


async def test_an_unreadable_ca_file_stops_the_channel_being_built(tmp_path: Path) -> None:
    with pytest.raises(ChannelSettingsError, match="ca_file"):
        WebhookChannel(settings_for("https://hooks.example", ca_file=tmp_path / "missing.pem"))


async def test_the_webhook_hears_of_the_steps_it_is_set_to() -> None:
    defaults = WebhookChannel(settings_for("https://hooks.example"))
    chosen = WebhookChannel(settings_for("https://hooks.example", steps=["raise", "dispatch"]))
    alert = alert_row()

    heard_by_default = [step for step in AlertStep if defaults.route.action_for(step, alert)]
    heard_when_chosen = [step for step in AlertStep if chosen.route.action_for(step, alert)]

    assert heard_by_default == ["raise", "escalate", "resolve", "clear", "cancel"]
    assert heard_when_chosen == ["raise", "dispatch"]
    assert defaults.route.channel == chosen.name == "webhook"
    await defaults.close()
    await chosen.close()


async def test_a_token_in_the_urls_query_is_signed_over_and_never_shown(receiver: WebhookReceiver) -> None:
    receiver.answers = [503]
    channel = WebhookChannel(settings_for(f"{receiver.url}?token=lakeside-query-token"))
    try:
        with pytest.raises(ChannelUnavailableError) as refused:
            await channel.deliver(delivery())
        await channel.deliver(delivery())
    finally:
        await channel.close()

    assert "lakeside-query-token" not in str(refused.value)
    assert HOOK_PATH in str(refused.value)
    assert (receiver.refused, len(receiver.accepted)) == ([], 1)
