"""How a village's layers resolve: defaults ← county ← town ← village, merged key by key, the more specific
winning; a layer that no longer validates is left out with its reason and the others still apply."""

from typing import Any

from fleet.alerts.rules.layers import ALERT_RULES
from fleet.alerts.rules.model import DEFAULT_RULES, KindRule, RateLimit
from fleet.layers.scope import LayerKey, Place, Scope
from protocol.messages import AlertKind, FleetAlertKind, Severity

COUNTY: LayerKey = (Scope.COUNTY, "anxi")
TOWN: LayerKey = (Scope.TOWN, "hutou")
VILLAGE: LayerKey = (Scope.VILLAGE, "shiqiao")
SHIQIAO = Place("shiqiao", "hutou", "anxi")


def test_the_more_specific_layer_wins_county_then_town_then_village() -> None:
    layers: dict[LayerKey, dict[str, Any]] = {
        COUNTY: {"clear_hold_s": 10, "watch": {"disk_percent": 90}, "ack_deadline_s": {"critical": 60}},
        TOWN: {"clear_hold_s": 20, "watch": {"disk_percent": 85}},
        VILLAGE: {"clear_hold_s": 30},
    }

    resolved = ALERT_RULES.resolve_leniently(SHIQIAO.chain(layers))

    assert resolved.applied == (COUNTY, TOWN, VILLAGE)
    assert resolved.value.clear_hold_s == 30
    assert resolved.value.watch.disk_percent == 85
    assert resolved.value.watch.offline_after_missed_heartbeats == 2, "the default where no layer sets it"
    assert resolved.value.ack_deadline_s == {
        Severity.CRITICAL: 60,
        Severity.MAJOR: 600,
        Severity.MINOR: 1800,
        Severity.WARNING: 3600,
    }, "one severity's deadline changed, the others kept"


def test_a_village_override_of_one_kind_keeps_the_countys_other_kinds_and_fields() -> None:
    layers: dict[LayerKey, dict[str, Any]] = {
        COUNTY: {
            "kinds": {
                "camera_offline": {"severity": "minor", "hold_off_s": 300},
                "gateway_offline": {"rate_limit": {"max_alerts": 3, "per_s": 3600}},
            }
        },
        VILLAGE: {"kinds": {"camera_offline": {"severity": "major"}, "panic": {"clear_hold_s": 0}}},
    }

    rules = ALERT_RULES.resolve_leniently(SHIQIAO.chain(layers)).value

    assert rules.rule(AlertKind.CAMERA_OFFLINE) == KindRule(severity=Severity.MAJOR, hold_off_s=300)
    assert rules.rule(FleetAlertKind.GATEWAY_OFFLINE).rate_limit == RateLimit(max_alerts=3, per_s=3600)
    assert rules.rule(AlertKind.PANIC) == KindRule(clear_hold_s=0)
    assert rules.rule(AlertKind.DOOR_FORCED) == KindRule(), "a kind no layer names keeps the defaults"


def test_layers_of_other_places_do_not_reach_a_village() -> None:
    layers: dict[LayerKey, dict[str, Any]] = {
        (Scope.TOWN, "xiping"): {"clear_hold_s": 1},
        (Scope.VILLAGE, "beicun"): {"clear_hold_s": 2},
    }

    resolved = ALERT_RULES.resolve_leniently(SHIQIAO.chain(layers))

    assert (resolved.value, resolved.applied) == (DEFAULT_RULES, ())


def test_a_village_in_no_town_gets_only_its_own_layer() -> None:
    unplaced = Place("heard-of", None, None)
    layers: dict[LayerKey, dict[str, Any]] = {COUNTY: {"clear_hold_s": 1}, (Scope.VILLAGE, "heard-of"): {}}

    assert [key for key, _ in unplaced.chain(layers)] == [(Scope.VILLAGE, "heard-of")]


def test_a_layer_that_no_longer_validates_is_left_out_and_the_others_apply() -> None:
    layers: dict[LayerKey, dict[str, Any]] = {
        COUNTY: {"clear_hold_s": 10},
        TOWN: {"kinds": {"panic": {"escalate": True}}},  # e.g. written before a field was renamed
        VILLAGE: {"watch": {"disk_percent": 90}},
    }

    resolved = ALERT_RULES.resolve_leniently(SHIQIAO.chain(layers))

    assert resolved.applied == (COUNTY, VILLAGE)
    assert resolved.ignored == {TOWN: "kinds.panic.escalate: Extra inputs are not permitted"}
    assert (resolved.value.clear_hold_s, resolved.value.watch.disk_percent) == (10, 90)
