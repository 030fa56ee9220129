"""The base of every configuration model the fleet may push to a gateway."""

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Frozen, no unknown fields, no non-finite numbers.

    Lax in their own right, so a technician's TOML and environment strings validate; off the wire
    :class:`protocol.codec.Decoder` validates them strictly, as it does every payload.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
