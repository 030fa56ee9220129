"""Config push parts for tests: the fleet's side with a throwaway signing key."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.configs.push import ConfigPush
from fleet.configs.signing import ConfigSigner
from tests.fleet.helpers import FakeClock
from tests.signing_keys import SigningKeys


def config_push(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, keys: SigningKeys | None = None
) -> ConfigPush:
    """Config push on ``sessions``, signing with ``keys`` (a fresh key pair unless given)."""
    return ConfigPush(sessions, clock, ConfigSigner((keys or SigningKeys.generate()).private))
