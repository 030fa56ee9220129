"""The dashboards package's exception tree: everything it raises on purpose derives from DashboardsError.

Third-party exceptions (grafana-client's, requests', the JSON decoder's) are translated where the
library is called, so the CLI catches :class:`DashboardsError` alone and prints its message.
"""

from collections.abc import Sequence
from pathlib import Path


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


class SourceUnreachableError(QueryError):
    """No HTTP answer from the data source (connection refused, DNS or TLS failure, a URL that is no HTTP URL):
    a preview would show this error in every panel, so it stops at the first."""


class PreviewFailedError(DashboardsError):
    """Panels of the previews show errors instead of data; the previews were drawn all the same (the errors in
    red), and ``written`` lists them."""

    def __init__(self, failures: Sequence[str], written: Sequence[Path]) -> None:
        listed = "".join(f"\n  {failure}" for failure in failures)
        super().__init__(f"panels showing an error instead of data ({len(failures)}):{listed}")
        self.failures = list(failures)
        self.written = list(written)
