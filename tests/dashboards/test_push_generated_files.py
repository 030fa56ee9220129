"""Generated dashboards on disk: one stable file per dashboard, read back strictly, errors naming the file."""

import json
from pathlib import Path

import pytest

from dashboards.errors import GeneratedFileError
from dashboards.generated_files import generated_path, read_generated, write_generated
from dashboards.model import Flavour, GeneratedDashboard
from tests.dashboards.test_push import DASHBOARDS, sample, sample_model


def test_dashboards_are_written_per_flavour_and_read_back_equal(tmp_path: Path) -> None:
    result = write_generated(DASHBOARDS, tmp_path)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in result.written) == [
        "influxdb/outpost-alerts-influx.json",
        "prometheus/outpost-alerts-prom.json",
        "prometheus/outpost-county-overview-prom.json",
    ]
    assert read_generated(tmp_path) == sorted(DASHBOARDS, key=lambda d: (list(Flavour).index(d.flavour), d.uid))
    assert read_generated(tmp_path, Flavour.INFLUXDB) == [DASHBOARDS[2]]


def test_a_file_has_sorted_keys_two_space_indent_utf8_and_a_trailing_newline(tmp_path: Path) -> None:
    dashboard = sample("outpost-village-prom", "Village · detail")
    write_generated([dashboard], tmp_path)

    text = generated_path(tmp_path, dashboard).read_text(encoding="utf-8")

    assert text.endswith("}\n")
    assert not text.endswith("\n\n")
    assert '"title": "Village · detail"' in text  # not \u00b7
    second_line = text.splitlines()[1]
    assert second_line.startswith('  "')
    assert not second_line.startswith("   ")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    keys = list(json.loads(text))
    assert keys == sorted(keys)


def test_writing_the_same_dashboards_again_leaves_the_files_alone(tmp_path: Path) -> None:
    write_generated(DASHBOARDS, tmp_path)
    path = generated_path(tmp_path, DASHBOARDS[0])
    stamp = path.stat().st_mtime_ns
    inode = path.stat().st_ino

    again = write_generated(DASHBOARDS, tmp_path)

    assert again.written == ()
    assert len(again.unchanged) == 3
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (stamp, inode)


def test_pruning_removes_files_of_dashboards_no_longer_generated(tmp_path: Path) -> None:
    write_generated(DASHBOARDS, tmp_path)
    (tmp_path / "prometheus" / "notes.txt").write_text("kept: not a dashboard")

    result = write_generated(DASHBOARDS[:1], tmp_path, prune=True)

    assert sorted(p.name for p in result.removed) == ["outpost-alerts-influx.json", "outpost-alerts-prom.json"]
    assert [d.uid for d in read_generated(tmp_path)] == [DASHBOARDS[0].uid]
    assert (tmp_path / "prometheus" / "notes.txt").exists()


def test_a_file_that_is_not_json_is_refused_naming_it_and_the_line(tmp_path: Path) -> None:
    write_generated(DASHBOARDS, tmp_path)
    broken = tmp_path / "prometheus" / "outpost-alerts-prom.json"
    broken.write_text('{\n  "uid": "outpost-alerts-prom",\n  "title": \n}\n')

    with pytest.raises(GeneratedFileError, match=rf"{broken} is not valid JSON \(line 4, column 1"):
        read_generated(tmp_path)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[]", "is not a JSON object but list"),
        ('{"title": "Alerts"}', "has no string 'uid'"),
        ('{"uid": "outpost-alerts-prom", "title": "  "}', "has no non-empty string 'title'"),
        ('{"uid": "outpost-other-prom", "title": "Alerts"}', "must be named outpost-other-prom.json"),
    ],
)
def test_a_malformed_dashboard_file_is_refused_naming_it(tmp_path: Path, content: str, complaint: str) -> None:
    path = tmp_path / "prometheus" / "outpost-alerts-prom.json"
    path.parent.mkdir()
    path.write_text(content)

    with pytest.raises(GeneratedFileError, match=complaint) as raised:
        read_generated(tmp_path)
    assert str(path) in str(raised.value)


def test_reading_a_directory_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(GeneratedFileError, match="the directory does not exist"):
        read_generated(tmp_path / "missing")
    assert read_generated(tmp_path) == []  # exists, holds no flavour yet


@pytest.mark.parametrize(
    ("dashboard", "complaint"),
    [
        (GeneratedDashboard(Flavour.PROMETHEUS, "a/b", "A", {"uid": "a/b", "title": "A"}), "a Grafana uid is"),
        (GeneratedDashboard(Flavour.PROMETHEUS, "x" * 41, "A", {"uid": "x" * 41, "title": "A"}), "a Grafana uid is"),
        (GeneratedDashboard(Flavour.PROMETHEUS, "a", "A", sample_model("b", "A")), "its model's uid is 'b'"),
        (GeneratedDashboard(Flavour.PROMETHEUS, "a", "A", sample_model("a", "B")), "its model's title is 'B'"),
    ],
)
def test_a_dashboard_whose_file_grafana_would_misread_is_not_written(
    tmp_path: Path, dashboard: GeneratedDashboard, complaint: str
) -> None:
    with pytest.raises(GeneratedFileError, match=complaint):
        write_generated([dashboard], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_two_dashboards_with_one_uid_are_not_written(tmp_path: Path) -> None:
    with pytest.raises(GeneratedFileError, match="two dashboards have this uid"):
        write_generated([DASHBOARDS[0], DASHBOARDS[0]], tmp_path)
