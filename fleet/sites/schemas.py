"""What callers send and see for sites, gateways and devices: strict input models and public views."""

from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fleet.db.schema import CountyRow, DeviceRow, GridRow, TownRow, VillageRow
from protocol.gateway_config import DeviceKind
from protocol.identifiers import Identifier

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Patch(_Input):
    """Only the fields given change; ``null`` clears an optional field, and is refused for the others."""

    _not_nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> Self:
        nulls = sorted(name for name in self._not_nullable & self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True)


class CountySpec(_Input):
    id: Identifier
    name: Name


class CountyPatch(_Patch):
    _not_nullable = frozenset({"name"})

    name: Name | None = None


class TownSpec(_Input):
    id: Identifier
    county_id: Identifier
    name: Name


class TownPatch(_Patch):
    _not_nullable = frozenset({"county_id", "name"})

    county_id: Identifier | None = None
    name: Name | None = None


class VillageSpec(_Input):
    id: Identifier
    town_id: Identifier
    name: Name
    latitude: Latitude | None = None
    longitude: Longitude | None = None

    @model_validator(mode="after")
    def _both_coordinates_or_none(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class VillagePatch(_Patch):
    _not_nullable = frozenset({"town_id", "name"})

    town_id: Identifier | None = None
    name: Name | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class GridSpec(_Input):
    id: Identifier
    name: Name


class GridPatch(_Patch):
    _not_nullable = frozenset({"name"})

    name: Name | None = None


class GatewaySpec(_Input):
    id: Identifier
    village_id: Identifier
    name: Name | None = None


class GatewayPatch(_Patch):
    _not_nullable = frozenset({"village_id"})

    village_id: Identifier | None = None
    name: Name | None = None


class DeviceSpec(_Input):
    """A device on a gateway (PUT under the gateway with its id): kind, optional name and grid of the village."""

    kind: DeviceKind
    name: Name | None = None
    grid_id: Identifier | None = None


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class CountyPublic(_Public):
    id: str
    name: str
    created_ms: int

    @classmethod
    def of(cls, row: CountyRow) -> Self:
        return cls.model_validate(row)


class TownPublic(_Public):
    id: str
    county_id: str
    name: str
    created_ms: int

    @classmethod
    def of(cls, row: TownRow) -> Self:
        return cls.model_validate(row)


class VillagePublic(_Public):
    """``town_id`` is null for a village the fleet only heard of from a gateway's traffic (not yet placed)."""

    id: str
    town_id: str | None
    name: str
    latitude: float | None
    longitude: float | None
    first_seen_ms: int

    @classmethod
    def of(cls, row: VillageRow) -> Self:
        return cls.model_validate(row)


class GridPublic(_Public):
    village_id: str
    id: str
    name: str
    created_ms: int

    @classmethod
    def of(cls, row: GridRow) -> Self:
        return cls.model_validate(row)


class DevicePublic(_Public):
    gateway_id: str
    id: str
    kind: DeviceKind
    name: str | None
    grid_id: str | None
    created_ms: int

    @classmethod
    def of(cls, row: DeviceRow) -> Self:
        return cls.model_validate(row)


class LevelTally(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class ImportReport(BaseModel):
    """What a site list changed (or, with ``dry_run``, would change), level by level."""

    rows: int
    dry_run: bool
    counties: LevelTally = Field(default_factory=LevelTally)
    towns: LevelTally = Field(default_factory=LevelTally)
    villages: LevelTally = Field(default_factory=LevelTally)
    grids: LevelTally = Field(default_factory=LevelTally)
