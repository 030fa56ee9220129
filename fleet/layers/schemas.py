"""A layer as the API shows it."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.db.schema import LayerColumns
from fleet.layers.scope import Scope


class LayerPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    scope: Scope
    scope_id: str
    overrides: dict[str, Any] = Field(description="The part of the document this layer sets.")
    updated_ms: int
    updated_by: str

    @classmethod
    def of(cls, row: LayerColumns, overrides: dict[str, Any] | None = None) -> "LayerPublic":
        """The layer at ``row``, showing ``overrides`` instead of the stored ones when given (redacted)."""
        return cls(
            scope=Scope(row.scope),
            scope_id=row.scope_id,
            overrides=row.overrides if overrides is None else overrides,
            updated_ms=row.updated_ms,
            updated_by=row.updated_by,
        )
