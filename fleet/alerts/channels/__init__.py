"""Where alerts go: one module per channel (the governance platform, a webhook, the village centre's MQTT topic).

Each implements :class:`fleet.alerts.channels.base.Channel`; :mod:`fleet.alerts.delivery` runs one worker per
channel over the outbox, and :func:`fleet.alerts.outbox.case_route` / :func:`~fleet.alerts.outbox.notify_route`
say which of an alert's steps it hears of.
"""
