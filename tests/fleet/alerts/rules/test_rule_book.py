"""The rule book on SQLite and PostgreSQL: layers stored and audited, and the rules served from memory kept in
step with writes, with the hierarchy after a refresh, and with what is stored when a service starts."""

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.rules.book import RuleBook
from fleet.alerts.rules.model import DEFAULT_RULES
from fleet.db.schema import AlertRuleLayerRow, AuditRow
from fleet.errors import InvalidRequestError, NotFoundError
from fleet.layers.scope import Scope
from fleet.sites.schemas import VillagePatch
from fleet.sites.store import SiteStore
from protocol.messages import AlertKind, Severity
from tests.fleet.configs.sites import ADMIN, build_county
from tests.fleet.helpers import FakeClock

MINOR_CAMERAS = {"kinds": {"camera_offline": {"severity": "minor"}}}


@pytest.fixture
async def book(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> RuleBook:
    await build_county(any_sessions, clock)
    book = RuleBook(any_sessions, clock)
    await book.load()
    return book


def camera_offline_severity(book: RuleBook, village_id: str) -> Severity:
    return book.for_village(village_id).severity_of(AlertKind.CAMERA_OFFLINE, Severity.MAJOR)


async def test_a_write_through_the_book_is_served_at_once(book: RuleBook) -> None:
    assert book.for_village("shiqiao") is DEFAULT_RULES

    await book.put_layer(ADMIN, Scope.TOWN, "hutou", MINOR_CAMERAS)

    assert camera_offline_severity(book, "shiqiao") is Severity.MINOR
    assert camera_offline_severity(book, "dongcun") is Severity.MINOR
    assert camera_offline_severity(book, "beicun") is Severity.MAJOR, "another town's village"

    await book.put_layer(ADMIN, Scope.VILLAGE, "dongcun", {"kinds": {"camera_offline": {"severity": "info"}}})
    assert camera_offline_severity(book, "dongcun") is Severity.INFO
    await book.delete_layer(ADMIN, Scope.TOWN, "hutou")

    assert camera_offline_severity(book, "shiqiao") is Severity.MAJOR
    assert camera_offline_severity(book, "dongcun") is Severity.INFO
    assert book.for_village("shiqiao") is DEFAULT_RULES


async def test_a_village_moved_to_another_town_runs_by_its_new_towns_rules_after_a_refresh(
    book: RuleBook, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await book.put_layer(ADMIN, Scope.TOWN, "xiping", MINOR_CAMERAS)
    assert camera_offline_severity(book, "shiqiao") is Severity.MAJOR

    await SiteStore(any_sessions, clock).update_village(ADMIN, "shiqiao", VillagePatch(town_id="xiping"))
    assert camera_offline_severity(book, "shiqiao") is Severity.MAJOR, "served from memory until the refresh"
    await book.refresh()

    assert camera_offline_severity(book, "shiqiao") is Severity.MINOR
    assert (await book.village_rules("shiqiao")).town_id == "xiping"


async def test_a_village_unknown_or_new_runs_by_the_defaults(
    book: RuleBook, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await book.put_layer(ADMIN, Scope.COUNTY, "anxi", MINOR_CAMERAS)

    assert book.for_village("nowhere") is DEFAULT_RULES
    assert book.for_village("heard-of") is DEFAULT_RULES, "in no town, so in no county yet"
    await SiteStore(any_sessions, clock).update_village(ADMIN, "heard-of", VillagePatch(town_id="xiping"))
    await book.refresh()
    assert camera_offline_severity(book, "heard-of") is Severity.MINOR


async def test_a_book_loaded_at_start_serves_what_is_stored(
    book: RuleBook, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await book.put_layer(ADMIN, Scope.COUNTY, "anxi", {"watch": {"offline_after_missed_heartbeats": 4}})
    await book.put_layer(ADMIN, Scope.VILLAGE, "beicun", {"watch": {"offline_after_missed_heartbeats": 6}})

    restarted = RuleBook(any_sessions, clock)
    assert restarted.for_village("shiqiao") is DEFAULT_RULES, "nothing served before load"
    await restarted.load()

    assert restarted.for_village("shiqiao").watch.offline_after_missed_heartbeats == 4
    assert restarted.for_village("beicun").watch.offline_after_missed_heartbeats == 6
    assert restarted.for_village("shiqiao") is restarted.for_village("dongcun"), "one chain, one resolved rule set"


async def test_a_stored_layer_that_no_longer_validates_is_left_out_and_shown(
    book: RuleBook, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await book.put_layer(ADMIN, Scope.COUNTY, "anxi", MINOR_CAMERAS)
    async with any_sessions.begin() as session:  # as a layer written by an older fleet version would be
        session.add(
            AlertRuleLayerRow(
                scope="town", scope_id="hutou", overrides={"mute": True}, updated_ms=clock(), updated_by="old"
            )
        )
    await book.refresh()

    assert camera_offline_severity(book, "shiqiao") is Severity.MINOR
    view = await book.village_rules("shiqiao")
    assert [(layer.scope, layer.scope_id) for layer in view.layers] == [(Scope.COUNTY, "anxi")]
    assert [(item.scope_id, item.reason) for item in view.ignored] == [
        ("hutou", "mute: Extra inputs are not permitted")
    ]


async def test_writes_are_audited_and_refusals_change_nothing(
    book: RuleBook, any_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await book.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", MINOR_CAMERAS)
    await book.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", MINOR_CAMERAS)  # the same: nothing to record
    await book.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"clear_hold_s": 5})
    await book.delete_layer(ADMIN, Scope.VILLAGE, "shiqiao")
    with pytest.raises(NotFoundError, match="no village 'nowhere'"):
        await book.put_layer(ADMIN, Scope.VILLAGE, "nowhere", {})
    with pytest.raises(NotFoundError, match="no town alert rules 'hutou'"):
        await book.delete_layer(ADMIN, Scope.TOWN, "hutou")
    with pytest.raises(InvalidRequestError, match="clear_hold_s"):
        await book.put_layer(ADMIN, Scope.COUNTY, "anxi", {"clear_hold_s": -1})

    async with any_sessions() as session:
        entries = (await session.scalars(select(AuditRow).order_by(AuditRow.id))).all()
        layers = (await session.scalars(select(AlertRuleLayerRow))).all()
    rules_entries = [entry for entry in entries if entry.target_type == "alert_rule_layer"]
    assert [(e.action, e.target_id, e.actor) for e in rules_entries] == [
        ("alert_rule_layer.create", "village/shiqiao", "li-wei"),
        ("alert_rule_layer.update", "village/shiqiao", "li-wei"),
        ("alert_rule_layer.delete", "village/shiqiao", "li-wei"),
    ]
    before, after = rules_entries[1].before, rules_entries[1].after
    assert (before or {}).get("overrides") == MINOR_CAMERAS
    assert (after or {}).get("overrides") == {"clear_hold_s": 5}
    assert layers == []
