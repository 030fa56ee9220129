"""The registry's tables (SQLAlchemy 2 typed mappings). Changes here need an Alembic migration."""

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class VillageRow(Base):
    __tablename__ = "villages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)


class GatewayRow(Base):
    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    village_id: Mapped[str] = mapped_column(ForeignKey("villages.id"), index=True)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    online: Mapped[bool] = mapped_column(default=False)
    presence_reason: Mapped[str] = mapped_column(String(32), default="never_connected")
    presence_changed_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int | None] = mapped_column(BigInteger)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    heartbeat_interval_s: Mapped[float | None]
    last_health: Mapped[dict[str, Any] | None]
    last_health_ms: Mapped[int | None] = mapped_column(BigInteger)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_delivery_due", "delivery_state", "next_attempt_ms"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the gateway's event id
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    village_id: Mapped[str] = mapped_column(ForeignKey("villages.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    grid_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(String(256))
    evidence: Mapped[dict[str, Any]]
    seq: Mapped[int] = mapped_column(BigInteger)
    raised_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    delivery_state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    delivery_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(512))
    case_id: Mapped[str | None] = mapped_column(String(64))
    delivered_at_ms: Mapped[int | None] = mapped_column(BigInteger)
