"""The JSON Schema files committed under docs/protocol/ are exactly what the models generate."""

import json
from pathlib import Path

import pytest

from protocol.messages import MODEL_FOR_CHANNEL
from protocol.schema import SCHEMA_MODELS, schema_documents, write_schemas

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "protocol"
REGENERATE = "run `outpost protocol schema` and commit docs/protocol/"


def test_committed_schemas_match_the_models() -> None:
    expected = schema_documents()
    committed = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS_DIR.glob("*.schema.json"))}

    missing = sorted(set(expected) - set(committed))
    stale = sorted(set(committed) - set(expected))
    outdated = sorted(name for name in set(expected) & set(committed) if committed[name] != expected[name])

    if missing or stale or outdated:
        pytest.fail(
            f"docs/protocol/ is out of date with the protocol models (missing: {missing}, no longer generated: "
            f"{stale}, changed: {outdated}); {REGENERATE}",
            pytrace=False,
        )


def test_there_is_one_schema_per_channel_model_and_governance_model() -> None:
    names = set(schema_documents())

    assert names == {f"{model.__name__}.schema.json" for model in SCHEMA_MODELS}
    assert {f"{model.__name__}.schema.json" for model in MODEL_FOR_CHANNEL.values()} <= names
    assert {"CaseRequest.schema.json", "CaseReceipt.schema.json"} <= names


def test_schema_documents_are_stable_json_with_a_trailing_newline() -> None:
    first, second = schema_documents(), schema_documents()

    assert first == second
    for name, text in first.items():
        assert text.endswith("}\n"), name
        document = json.loads(text)
        assert document["title"] == name.removesuffix(".schema.json")
        assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_envelope_schemas_pin_the_schema_version_and_forbid_extra_fields() -> None:
    for model in MODEL_FOR_CHANNEL.values():
        document = json.loads(schema_documents()[f"{model.__name__}.schema.json"])

        assert document["properties"]["schema_version"]["const"] == 1, model.__name__
        assert document["additionalProperties"] is False, model.__name__


def test_write_schemas_writes_every_document_and_removes_stale_ones(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "protocol"
    out.mkdir(parents=True)
    (out / "Retired.schema.json").write_text("{}", encoding="utf-8")
    (out / "Alert.schema.json").write_text("{}", encoding="utf-8")
    (out / "README.md").write_text("not a schema", encoding="utf-8")

    written = write_schemas(out)

    expected = schema_documents()
    assert sorted(path.name for path in written) == sorted(expected)
    assert all(path.parent == out for path in written)
    assert {path.name: path.read_text(encoding="utf-8") for path in out.glob("*.schema.json")} == expected
    assert not (out / "Retired.schema.json").exists()
    assert (out / "README.md").read_text(encoding="utf-8") == "not a schema"


def test_write_schemas_creates_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"

    write_schemas(out)

    assert sorted(path.name for path in out.iterdir()) == sorted(schema_documents())
