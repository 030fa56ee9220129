"""What the config push API takes and shows: layers, one gateway's config, and every gateway's status."""

from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.configs.state import SyncStatus, error_of, status_of
from fleet.db.schema import ConfigLayerRow, GatewayConfigRow
from fleet.layers.schemas import LayerPublic
from protocol.camera_sources import redact_source
from protocol.gateway_config import GatewayConfig


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


def layer_public(row: ConfigLayerRow, *, secrets: bool = True) -> LayerPublic:
    """The layer as the API shows it; without ``secrets``, camera sources lose their login and query."""
    return LayerPublic.of(row, None if secrets else without_camera_logins(row.overrides))


class LayerChange(_Public):
    """What writing or removing a layer did."""

    layer: LayerPublic | None = Field(description="The layer now; null once removed.")
    gateways: int = Field(description="Gateways the layer reaches.")
    changed: int = Field(description="Of them, how many got a new desired config (to be published).")


class GatewaySync(_Public):
    """Where one gateway stands with its desired config."""

    gateway_id: str
    village_id: str
    status: SyncStatus
    desired_version: int | None = Field(description="Null while no layer reaches the gateway.")
    published_ms: int | None = Field(description="When the broker took the desired version (retained).")
    reported_version: int | None
    reported_status: str | None
    reported_ms: int | None
    error: str | None = Field(description="Why the gateway refused the desired version, or why it is invalid.")

    @classmethod
    def of(cls, gateway_id: str, village_id: str, row: GatewayConfigRow | None) -> "GatewaySync":
        managed = row is not None and row.config is not None
        return cls(
            gateway_id=gateway_id,
            village_id=village_id,
            status=status_of(row),
            desired_version=row.version if row is not None and managed else None,
            published_ms=row.published_ms if row is not None else None,
            reported_version=row.reported_version if row is not None else None,
            reported_status=row.reported_status if row is not None else None,
            reported_ms=row.reported_ms if row is not None else None,
            error=error_of(row),
        )


class GatewayConfigView(_Public):
    """One gateway's config: the layers that reach it, what they resolve to, and where the gateway stands."""

    sync: GatewaySync
    town_id: str | None
    county_id: str | None
    layers: list[LayerPublic] = Field(description="The layers that reach the gateway, most general first.")
    resolved: GatewayConfig | None = Field(description="What the layers make now; null without layers or if invalid.")
    resolve_error: str | None
    key_id: str | None = Field(description="The key that signed the published version.")

    def without_camera_logins(self) -> "GatewayConfigView":
        """This view with every camera source's login and query redacted (for roles that do not provision)."""
        layers = [
            layer.model_copy(update={"overrides": without_camera_logins(layer.overrides)}) for layer in self.layers
        ]
        resolved = (
            GatewayConfig.model_validate(without_camera_logins(self.resolved.model_dump(mode="json")))
            if self.resolved is not None
            else None
        )
        return self.model_copy(update={"layers": layers, "resolved": resolved})


class StatusReport(_Public):
    counts: dict[SyncStatus, int] = Field(description="Gateways per status, among those listed.")
    gateways: list[GatewaySync]

    def within(self, keep: Callable[[GatewaySync], bool]) -> "StatusReport":
        """The report of the gateways ``keep`` accepts only (a scoped token's), counted again."""
        kept = [sync for sync in self.gateways if keep(sync)]
        counts = dict.fromkeys(SyncStatus, 0) | Counter(sync.status for sync in kept)
        return StatusReport(counts=counts, gateways=kept)


class SigningKeyPublic(_Public):
    key_id: str
    public_key_pem: str = Field(description="What a gateway's config_signing_key file holds.")


def without_camera_logins(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config document whose camera sources carry no login or query (``rtsp://host/path``)."""
    devices = document.get("devices")
    if not isinstance(devices, list):
        return document
    return {**document, "devices": [_device_without_login(device) for device in devices]}


def _device_without_login(device: object) -> object:
    params = device.get("params") if isinstance(device, dict) else None
    source = params.get("source") if isinstance(params, dict) else None
    if not isinstance(device, dict) or not isinstance(params, dict) or not isinstance(source, str):
        return device
    return {**device, "params": {**params, "source": redact_source(source)}}
