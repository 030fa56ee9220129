"""The contract's notion of time: UTC instants as integer epoch milliseconds."""

import time


def utc_now_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
