"""The rule book: alert rule layers stored (audited), and every village's resolved rules served from memory.

The alert store and the fleet's watchers ask for a village's rules on their hot paths, so
:meth:`RuleBook.for_village` answers synchronously from a cache built by :meth:`RuleBook.load` at start and
rebuilt by :meth:`RuleBook.refresh`: after every write through the book (in this process, the only one
serving the API) and periodically by the service, since the hierarchy changes without the book (a village
moved to another town, a new village heard of). A village the cache does not know runs by the defaults.

Villages that share their chain of layers (most villages of a town without a layer of their own) share
one resolved :class:`AlertRules`, so a rebuild validates once per distinct chain, not once per village.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.alerts.rules.layers import ALERT_RULES
from fleet.alerts.rules.model import DEFAULT_RULES, AlertRules
from fleet.alerts.rules.schemas import IgnoredLayer, VillageRules
from fleet.db.schema import AlertRuleLayerRow, TownRow, VillageRow
from fleet.errors import FleetError, NotFoundError
from fleet.layers.document import Resolved
from fleet.layers.rows import LayerRows, key_of
from fleet.layers.schemas import LayerPublic
from fleet.layers.scope import LayerKey, Place, Scope
from fleet.sites.records import Records

logger = logging.getLogger(__name__)


class RuleBook:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int], base: AlertRules = DEFAULT_RULES
    ) -> None:
        """``base``: what every village runs by under its layers (the fleet's ``alerts.rules`` setting)."""
        self._records = Records(sessions, clock)
        self._layers = LayerRows(AlertRuleLayerRow, ALERT_RULES, "alert_rule_layer", clock)
        self._clock = clock
        self._base = base
        self._rules: dict[str, AlertRules] = {}
        self._ignored: dict[LayerKey, str] = {}
        self._refreshing = asyncio.Lock()

    # --- serving -------------------------------------------------------------------------------

    def for_village(self, village_id: str) -> AlertRules:
        """The rules ``village_id`` runs by, from memory (the defaults for a village not known at the last refresh)."""
        return self._rules.get(village_id, self._base)

    async def load(self) -> None:
        """Build the cache at start; raises :class:`~fleet.errors.TransientError` if the database does not answer."""
        await self.refresh()

    async def refresh(self) -> None:
        """Rebuild the cache from the layers and the hierarchy as they are now (two queries).

        Serialised, so a rebuild that read older rows can never replace one that read newer ones."""
        async with self._refreshing:
            async with self._records.read("read the alert rules of every village") as session:
                places = await _places(session)
                layers = await self._layers.overrides(session)
            by_chain: dict[tuple[LayerKey, ...], Resolved[AlertRules]] = {}
            rules: dict[str, AlertRules] = {}
            ignored: dict[LayerKey, str] = {}
            for place in places:
                reaching = place.chain(layers)
                chain_key = tuple(key for key, _ in reaching)
                resolved = by_chain.get(chain_key)
                if resolved is None:
                    resolved = by_chain[chain_key] = ALERT_RULES.resolve_leniently(reaching, self._base)
                    ignored.update(resolved.ignored)
                if resolved.applied:
                    rules[place.village_id] = resolved.value
            self._rules = rules
            if ignored != self._ignored:
                for key, reason in ignored.items():
                    logger.warning("%s no longer validates and is left out: %s", ALERT_RULES.label(key), reason)
                self._ignored = ignored
        logger.debug("alert rules: %d villages, %d with their own rules", len(places), len(rules))

    # --- layers ---------------------------------------------------------------------------------

    async def layer(self, scope: Scope, scope_id: str) -> LayerPublic:
        async with self._records.read(f"read the {scope.value} alert rules {scope_id}") as session:
            return LayerPublic.of(await self._layers.get(session, (scope, scope_id)))

    async def put_layer(self, actor: Actor, scope: Scope, scope_id: str, overrides: Mapping[str, Any]) -> LayerPublic:
        """Set the layer at ``scope``/``scope_id`` to ``overrides``, replacing it whole; refused, changing
        nothing, if it is not valid (:class:`~fleet.errors.InvalidRequestError`) or the site is unknown
        (:class:`~fleet.errors.NotFoundError`)."""
        key = (scope, scope_id)
        checked = ALERT_RULES.check(overrides, key)
        async with self._records.write(f"set the {scope.value} alert rules {scope_id}") as session:
            row, changed = await self._layers.put(session, actor, key, checked)
            public = LayerPublic.of(row)
        if changed:
            logger.info("%s set %s", actor.name, ALERT_RULES.label(key))
            await self.changed()
        return public

    async def delete_layer(self, actor: Actor, scope: Scope, scope_id: str) -> None:
        """Remove a layer: the villages it reached fall back on their other layers, or the defaults."""
        key = (scope, scope_id)
        async with self._records.write(f"remove the {scope.value} alert rules {scope_id}") as session:
            await self._layers.delete(session, actor, key)
        logger.info("%s removed %s", actor.name, ALERT_RULES.label(key))
        await self.changed()

    async def village_rules(self, village_id: str) -> VillageRules:
        """The rules the village's layers make now, read from the database (what the cache holds after a refresh)."""
        async with self._records.read(f"read the alert rules of village {village_id}") as session:
            place = await _place(session, village_id)
            found = {key_of(row): row for row in await self._layers.at(session, place.layer_keys())}
        resolved = ALERT_RULES.resolve_leniently(
            place.chain({k: row.overrides for k, row in found.items()}), self._base
        )
        return VillageRules(
            village_id=place.village_id,
            town_id=place.town_id,
            county_id=place.county_id,
            layers=[LayerPublic.of(found[key]) for key in resolved.applied],
            ignored=[IgnoredLayer(scope=s, scope_id=i, reason=why) for (s, i), why in resolved.ignored.items()],
            rules=resolved.value,
        )

    async def changed(self) -> None:
        """Layers or the hierarchy changed (committed): rebuild now; a cache that cannot be rebuilt now catches up
        at the service's next refresh."""
        try:
            await self.refresh()
        except FleetError as exc:
            logger.warning("alert rules changed but the cache was not rebuilt (next periodic refresh will): %s", exc)


def _place_query() -> Select[str, str | None, str | None]:
    return select(VillageRow.id, VillageRow.town_id, TownRow.county_id).outerjoin(
        TownRow, TownRow.id == VillageRow.town_id
    )


async def _places(session: AsyncSession) -> list[Place]:
    return [Place(*row) for row in (await session.execute(_place_query())).all()]


async def _place(session: AsyncSession, village_id: str) -> Place:
    found = (await session.execute(_place_query().where(VillageRow.id == village_id))).first()
    if found is None:
        raise NotFoundError(f"no village {village_id!r}")
    return Place(*found)
