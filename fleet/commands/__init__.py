"""Commands from the fleet to gateways: recorded, published, answered or timed out, and kept.

:mod:`~fleet.commands.store` holds each command's row and its state transitions,
:mod:`~fleet.commands.dispatcher` sends commands, takes the gateways' answers, expires commands past
their deadline and lets API calls wait for an outcome, :mod:`~fleet.commands.schemas` is what API
callers send and see.
"""
