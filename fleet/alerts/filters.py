"""Which alerts to list: the filters of ``GET /alerts`` and ``outpost fleet alerts list``."""

from dataclasses import dataclass

from sqlalchemy import Select, select

from fleet.access.places import village_ids_within
from fleet.access.scope import PlaceScope
from fleet.db.schema import AlertRow, DeliveryState, VillageRow
from protocol.messages import Severity
from protocol.notifications import AlertLevel, AlertState


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts to list; every field left None matches everything."""

    village_id: str | None = None
    town_id: str | None = None
    within: PlaceScope | None = None  # a scoped token's place: only the alerts of its villages
    states: frozenset[AlertState] | None = None
    severities: frozenset[Severity] | None = None
    kinds: frozenset[str] | None = None
    level: AlertLevel | None = None
    delivery_state: DeliveryState | None = None
    raised_before_ms: int | None = None  # older than
    raised_since_ms: int | None = None
    limit: int = 100

    def query(self) -> Select[AlertRow]:
        query = select(AlertRow).order_by(AlertRow.raised_at_ms.desc(), AlertRow.id).limit(self.limit)
        if self.village_id is not None:
            query = query.where(AlertRow.village_id == self.village_id)
        if self.town_id is not None:
            in_town = select(VillageRow.id).where(VillageRow.town_id == self.town_id)
            query = query.where(AlertRow.village_id.in_(in_town))
        if self.within is not None:
            query = query.where(AlertRow.village_id.in_(village_ids_within(self.within)))
        if self.states is not None:
            query = query.where(AlertRow.state.in_(self.states))
        if self.severities is not None:
            query = query.where(AlertRow.severity.in_(self.severities))
        if self.kinds is not None:
            query = query.where(AlertRow.kind.in_(self.kinds))
        if self.level is not None:
            query = query.where(AlertRow.level == self.level)
        if self.delivery_state is not None:
            query = query.where(AlertRow.delivery_state == self.delivery_state)
        if self.raised_before_ms is not None:
            query = query.where(AlertRow.raised_at_ms < self.raised_before_ms)
        if self.raised_since_ms is not None:
            query = query.where(AlertRow.raised_at_ms >= self.raised_since_ms)
        return query
