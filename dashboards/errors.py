"""The dashboards package's exception tree: everything it raises on purpose derives from DashboardsError.

Third-party exceptions (grafana-client's, requests', the JSON decoder's) are translated where the
library is called, so the CLI catches :class:`DashboardsError` alone and prints its message.
"""


class DashboardsError(Exception):
    """Base class of every error the dashboards package raises on purpose."""


class GeneratedFileError(DashboardsError):
    """A generated dashboard file is missing, malformed or does not match where it lies; the message names it."""


class GrafanaPushError(DashboardsError):
    """Grafana refused or failed a request of the push; the message says which request and what Grafana answered."""


class GrafanaAuthError(GrafanaPushError):
    """Grafana refused the token (401) or the token may not do what the push needs (403)."""


class GrafanaUnreachableError(GrafanaPushError):
    """No HTTP answer from Grafana: connection refused, DNS failure, TLS failure or timeout."""


class QueryError(DashboardsError):
    """A data source refused or failed a panel's query; the message names the query and the answer."""
