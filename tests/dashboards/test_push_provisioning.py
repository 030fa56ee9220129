"""The Grafana provisioning files: valid YAML naming the data sources and dashboards the generated JSON uses."""

import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from dashboards.catalogue import GENERATED_DIR
from dashboards.county_copies import SHARED_FOLDER
from dashboards.generated_files import read_generated
from dashboards.grafana_uid import is_valid_grafana_uid
from dashboards.model import Flavour

PROVISIONING: Final = Path(__file__).parents[2] / "dashboards" / "provisioning"
DATASOURCES: Final = PROVISIONING / "datasources" / "outpost.yaml"
PROVIDERS: Final = PROVISIONING / "dashboards" / "outpost.yaml"
ENV_FILE: Final = PROVISIONING / "outpost.env"
_VARIABLE: Final = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    assert document["apiVersion"] == 1, path
    return document


def env_defaults() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def expand(value: str, environment: dict[str, str]) -> str:
    """Grafana's expansion (Go's os.ExpandEnv): $NAME and ${NAME}, an unset name becoming ""."""
    return _VARIABLE.sub(lambda m: environment.get(m.group(1) or m.group(2), ""), value)


def string_values(node: Any) -> list[str]:
    """Every string value in a parsed document: what Grafana expands (keys and comments it leaves alone)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in string_values(value)]
    if isinstance(node, list):
        return [text for item in node for text in string_values(item)]
    return [node] if isinstance(node, str) else []


def datasources() -> dict[str, dict[str, Any]]:
    return {source["uid"]: source for source in load(DATASOURCES)["datasources"]}


def test_the_data_sources_have_the_uids_and_types_the_dashboards_default_to() -> None:
    sources = datasources()
    generated = read_generated(GENERATED_DIR)
    assert {d.flavour for d in generated} == set(Flavour)

    for dashboard in generated:
        variable = next(v for v in dashboard.model["templating"]["list"] if v["name"] == "datasource")
        default = variable["current"]["value"]
        assert default in sources, f"{dashboard.uid} defaults to data source {default!r}, which is not provisioned"
        assert sources[default]["type"] == variable["query"] == dashboard.flavour.value, dashboard.uid

    assert {uid: s["type"] for uid, s in sources.items()} == {
        "outpost-victoriametrics": "prometheus",
        "outpost-influxdb": "influxdb",
    }


def test_influxdb_is_queried_with_influxql_in_database_outpost() -> None:
    influxdb = datasources()["outpost-influxdb"]

    assert influxdb["jsonData"]["version"] == "InfluxQL"
    assert influxdb["jsonData"]["dbName"] == "outpost"
    assert datasources()["outpost-victoriametrics"]["isDefault"] is True
    assert influxdb["isDefault"] is False


def test_every_variable_the_files_read_has_a_default_in_the_env_file() -> None:
    used = {
        match.group(1) or match.group(2)
        for path in (DATASOURCES, PROVIDERS)
        for value in string_values(load(path))
        for match in _VARIABLE.finditer(value)
    }

    assert used
    assert used <= env_defaults().keys()


def test_with_the_env_file_the_urls_point_at_the_default_servers() -> None:
    environment = env_defaults()
    sources = datasources()

    assert expand(sources["outpost-victoriametrics"]["url"], environment) == "http://127.0.0.1:8428"
    assert expand(sources["outpost-influxdb"]["url"], environment) == "http://127.0.0.1:8086"
    assert expand(sources["outpost-influxdb"]["user"], environment) == ""  # no credentials by default


@pytest.mark.parametrize("flavour", list(Flavour))
def test_each_flavour_has_a_file_provider_reading_its_generated_directory(flavour: Flavour) -> None:
    providers = {provider["name"]: provider for provider in load(PROVIDERS)["providers"]}
    provider = providers[f"outpost-{flavour.value}"]
    environment = env_defaults() | {"OUTPOST_DASHBOARDS_DIR": str(GENERATED_DIR)}

    assert provider["type"] == "file"
    assert Path(expand(provider["options"]["path"], environment)) == GENERATED_DIR / flavour.value
    assert is_valid_grafana_uid(provider["folderUid"])
    assert provider["allowUiUpdates"] is False


def test_the_providers_folders_are_distinct_from_each_other_and_from_the_pushs() -> None:
    providers = load(PROVIDERS)["providers"]

    assert len(providers) == len(Flavour)
    folder_uids = {provider["folderUid"] for provider in providers}
    titles = {provider["folder"] for provider in providers}
    assert len(folder_uids) == len(titles) == len(providers)
    assert SHARED_FOLDER.uid not in folder_uids
    assert SHARED_FOLDER.title not in titles


def test_the_generated_uids_differ_between_flavours_so_both_providers_can_load_at_once() -> None:
    generated = read_generated(GENERATED_DIR)

    assert len({d.uid for d in generated}) == len(generated)
