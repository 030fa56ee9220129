"""The wire contract shared by the edge agent, the fleet manager and the simulators.

Topics are built and parsed by :mod:`protocol.topics`, payloads are the models in
:mod:`protocol.messages`, and :mod:`protocol.codec` turns bytes into models (or into a
counted :class:`~protocol.codec.Rejection`). Nothing here imports another Outpost package.
"""

SCHEMA_VERSION = 1
"""The payload schema version this code speaks; every message carries it."""
