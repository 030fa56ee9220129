"""The command parts for tests: a dispatcher on a real database, with a downlink connected to a real
Mosquitto or one that never connects."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.commands.dispatcher import CommandDispatcher
from fleet.commands.store import CommandStore
from fleet.configs.signing import ConfigSigner
from fleet.mqtt.downlink import Downlink
from fleet.settings import BrokerSettings, CommandSettings
from tests.fleet.helpers import FakeClock

SETTINGS = CommandSettings(publish_timeout_s=0.2, max_wait_s=1.0)
SIGNING_KEY = Ed25519PrivateKey.generate()
"""The fleet's key in these tests: commands are signed with it, gateways trust its public half."""


def dispatcher(
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    downlink: Downlink,
    settings: CommandSettings = SETTINGS,
) -> CommandDispatcher:
    return CommandDispatcher(CommandStore(sessions, clock), downlink, clock, settings, ConfigSigner(SIGNING_KEY))


def unconnected_commands(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> CommandDispatcher:
    """Commands whose downlink never connects (no broker runs it): one sent ends undeliverable after 0.2 s."""
    return dispatcher(sessions, clock, Downlink(BrokerSettings(), "test-downlink"))
