"""Gateway faults: counted, and a failing part's reason logged once per change, its recovery once."""

import logging

import pytest

from edge.faults import STORE, STORE_FAILED, UPLINK, GatewayFaults


def test_a_reason_is_logged_at_error_once_per_change_and_its_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    faults = GatewayFaults()
    with caplog.at_level(logging.INFO, logger="edge.faults"):
        for _ in range(3):
            faults.failing(UPLINK, "broker refused gateway gw-1 (code 5)")
        faults.failing(UPLINK, "broker refused   gateway gw-1\n(code 5)")  # the same line, differently spaced
        faults.failing(UPLINK, "certificate not issued for 10.0.0.1")
        faults.recovered(UPLINK)
        faults.recovered(UPLINK)

    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.ERROR, "uplink failing: broker refused gateway gw-1 (code 5)"),
        (logging.ERROR, "uplink failing: certificate not issued for 10.0.0.1"),
        (logging.INFO, "uplink works again (it failed: certificate not issued for 10.0.0.1)"),
    ]
    assert faults.reasons == {}


def test_counts_and_reasons_are_kept_per_part() -> None:
    faults = GatewayFaults()
    faults.count(STORE_FAILED, 3)
    faults.count(STORE_FAILED, 0)
    faults.failing(STORE, "database or disk is full")
    faults.failing(UPLINK, "refused")
    faults.recovered(UPLINK)

    assert faults.counts == {STORE_FAILED: 3}
    assert faults.reasons == {STORE: "database or disk is full"}
