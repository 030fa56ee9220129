"""Per-county copies: deterministic Grafana uids, the county's folder, and the county variable set to it."""

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards.county_copies import (
    SHARED_FOLDER,
    County,
    Folder,
    county_dashboard_uid,
    county_folder,
    county_variable_value,
    for_county,
)
from dashboards.errors import DashboardsError
from dashboards.grafana_uid import MAX_UID_LENGTH, derive_uid, is_valid_grafana_uid
from tests.dashboards.test_push import sample_model

GENERATED_UID = "outpost-county-overview-prom"


def test_a_short_county_keeps_the_readable_uid() -> None:
    assert county_dashboard_uid(GENERATED_UID, County("xihe")) == "outpost-county-overview-prom-xihe"


def test_a_long_county_gets_a_40_character_uid_with_a_readable_prefix_and_a_hash() -> None:
    uid = county_dashboard_uid(GENERATED_UID, County("north-eastern-highlands"))

    assert len(uid) == MAX_UID_LENGTH
    assert is_valid_grafana_uid(uid)
    assert uid.startswith("outpost-county-overview-prom-no")
    assert uid == county_dashboard_uid(GENERATED_UID, County("north-eastern-highlands", "another name"))


def test_long_counties_sharing_a_prefix_still_get_different_uids() -> None:
    first = county_dashboard_uid(GENERATED_UID, County("north-eastern-highlands-1"))
    second = county_dashboard_uid(GENERATED_UID, County("north-eastern-highlands-2"))

    assert first != second
    assert first[:31] == second[:31]  # same readable prefix, the hash tells them apart


def test_characters_grafana_refuses_are_replaced_and_the_original_hashed() -> None:
    dotted = derive_uid("outpost", "xi.he")
    dashed = derive_uid("outpost", "xi-he")

    assert dashed == "outpost-xi-he"
    assert dotted.startswith("outpost-xi-he-")
    assert dotted != dashed
    assert is_valid_grafana_uid(derive_uid("outpost", "西河 county/1"))


@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=3))
def test_any_parts_give_a_valid_uid_and_the_same_one_every_time(parts: list[str]) -> None:
    uid = derive_uid(*parts)

    assert is_valid_grafana_uid(uid)
    assert derive_uid(*parts) == uid


def test_empty_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty parts"):
        derive_uid("outpost", "")
    with pytest.raises(ValueError, match="non-empty id"):
        County(" ")


def test_a_county_folder_is_named_for_the_county_or_its_id() -> None:
    assert county_folder(County("xihe", "Xihe County")) == Folder("outpost-xihe", "Outpost · Xihe County")
    assert county_folder(County("dongshan")) == Folder("outpost-dongshan", "Outpost · dongshan")
    assert (SHARED_FOLDER.uid, SHARED_FOLDER.title) == ("outpost", "Outpost")


def test_a_copy_opens_on_its_county_and_leaves_the_generated_model_untouched() -> None:
    model = sample_model(GENERATED_UID, "County overview")
    before = copy.deepcopy(model)

    copied = for_county(model, County("xihe", "Xihe County"), uid="outpost-county-overview-prom-xihe")

    assert model == before
    assert copied["uid"] == "outpost-county-overview-prom-xihe"
    county = copied["templating"]["list"][1]
    assert county["current"] == {"selected": True, "text": ["xihe"], "value": ["xihe"]}
    assert county["options"] == [{"selected": True, "text": "xihe", "value": "xihe"}]
    assert county["query"] == before["templating"]["list"][1]["query"]  # still lists every county to switch to
    assert copied["templating"]["list"][2] == before["templating"]["list"][2]  # town: all of the county's


def test_a_single_value_county_variable_gets_a_single_value() -> None:
    model = sample_model(GENERATED_UID, "County overview")
    model["templating"]["list"][1]["multi"] = False

    copied = for_county(model, County("xihe"), uid="x")

    assert county_variable_value(copied) == "xihe"


def test_a_dashboard_without_a_county_variable_cannot_be_copied_per_county() -> None:
    model = sample_model(GENERATED_UID, "County overview")
    del model["templating"]

    with pytest.raises(DashboardsError, match="has no template variable 'county'"):
        for_county(model, County("xihe"), uid="x")
