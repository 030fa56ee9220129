"""The channels a fleet's settings ask for: a webhook needs its URL and the secret its receiver verifies with,
village notifications need the fleet's broker connection; each is built only when asked for."""

import os

import pytest
from pydantic import ValidationError

from fleet.alerts.channels.base import Channel
from fleet.alerts.channels.configured import configured_channels
from fleet.alerts.outbox import Outbox
from fleet.mqtt.downlink import Downlink
from fleet.settings import BrokerSettings, FleetSettings
from protocol.notifications import AlertStep


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OUTPOST_FLEET_"):
            monkeypatch.delenv(name)


async def close_all(channels: list[Channel]) -> None:
    for channel in channels:
        await channel.close()


async def test_no_people_facing_channel_unless_asked_for() -> None:
    channels = configured_channels(FleetSettings(environment="development"))

    assert channels == []


async def test_every_channel_asked_for_is_built_in_order_with_its_own_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_GOVERNANCE__URL", "https://platform.county.example")
    monkeypatch.setenv("OUTPOST_FLEET_WEBHOOK__URL", "https://hooks.lakeside.example/outpost")
    monkeypatch.setenv("OUTPOST_FLEET_WEBHOOK__SECRET", "lakeside-webhook-secret")
    monkeypatch.setenv("OUTPOST_FLEET_WEBHOOK__STEPS", '["raise", "cancel"]')
    monkeypatch.setenv("OUTPOST_FLEET_VILLAGE_NOTIFY__ENABLED", "true")
    settings = FleetSettings(environment="development")

    channels = configured_channels(settings, publisher=Downlink(BrokerSettings(), "test-unconnected"))

    assert [channel.name for channel in channels] == ["governance", "webhook", "village_notify"]
    assert settings.webhook.steps == [AlertStep.RAISE, AlertStep.CANCEL]
    assert Outbox(channel.route for channel in channels).channels == ("governance", "webhook", "village_notify")
    await close_all(channels)


def test_village_notifications_without_the_broker_connection_are_a_wiring_mistake() -> None:
    settings = FleetSettings.model_validate({"environment": "development", "village_notify": {"enabled": True}})

    with pytest.raises(ValueError, match="publisher"):
        configured_channels(settings)


@pytest.mark.parametrize(
    "webhook",
    [
        {"url": "https://hooks.lakeside.example"},
        {"url": "https://hooks.lakeside.example", "secret": ""},
        {"url": "https://hooks.lakeside.example", "secret": "s", "steps": []},
        {"url": "https://hooks.lakeside.example", "secret": "s", "steps": ["snooze"]},
        {"url": "https://hooks.lakeside.example", "secret": "s", "verify_tls": False, "ca_file": "/etc/ca.pem"},
        {"url": "ftp://hooks.lakeside.example", "secret": "s"},
        {"url": "https://hooks.lakeside.example", "secret": "s", "headers": {"X-Extra": "1"}},
    ],
)
def test_a_webhook_setting_that_cannot_work_is_refused_at_start(webhook: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FleetSettings.model_validate({"environment": "development", "webhook": webhook})


def test_a_webhook_checks_tls_and_hears_what_needs_acting_on_and_what_ends_it_by_default() -> None:
    webhook = FleetSettings.model_validate(
        {"environment": "development", "webhook": {"url": "https://hooks.example", "secret": "s"}}
    ).webhook

    assert webhook.verify_tls is True
    assert webhook.steps == ["raise", "escalate", "cancel", "clear", "resolve"]
