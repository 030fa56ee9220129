"""JSON Schema for every payload of the contract, as committed under ``docs/protocol/``."""

import json
from pathlib import Path
from typing import Final

from pydantic import BaseModel

from protocol.governance import (
    CaseClosed,
    CaseDispatched,
    CaseFeedback,
    CaseReceipt,
    CaseRequest,
    CaseResolved,
    CaseUpdate,
    CaseUpdateReceipt,
)
from protocol.messages import MODEL_FOR_CHANNEL
from protocol.notifications import AlertNotification

SCHEMA_MODELS: Final[tuple[type[BaseModel], ...]] = (
    *MODEL_FOR_CHANNEL.values(),
    CaseRequest,
    CaseReceipt,
    CaseUpdate,
    CaseUpdateReceipt,
    CaseDispatched,
    CaseResolved,
    CaseFeedback,
    CaseClosed,
    AlertNotification,
)


def schema_documents() -> dict[str, str]:
    """File name -> JSON Schema text (stable key order, trailing newline) for every payload model."""
    return {
        f"{model.__name__}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for model in SCHEMA_MODELS
    }


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``, removing stale ``*.schema.json`` files; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = schema_documents()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in documents:
            stale.unlink()
    written = []
    for name, text in documents.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
