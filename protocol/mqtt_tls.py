"""TLS to an MQTT broker, as every Outpost client sets it up: the gateway's uplink and village broker, and the
fleet's ingest, downlink and dynamic-security sessions.

The broker is verified against ``ca_file`` (a county CA, not the system's store: a county's broker
certificate is issued by its own CA) and its certificate must name the host connected to, unless
``check_hostname`` is off (refused in production by both services' settings). A client certificate is
presented when ``cert_file`` is set, as a broker with ``require_certificate true`` asks.
"""

import ssl
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, model_validator

from protocol.errors import TlsSettingsError


class MqttTlsSettings(BaseModel):
    """TLS to the broker: its CA, and a client certificate when the broker asks for one."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _key_with_its_certificate(self) -> "MqttTlsSettings":
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.key_file is set without tls.cert_file")
        return self


def mqtt_tls_context(tls: MqttTlsSettings | None, setting: str) -> ssl.SSLContext | None:
    """The TLS context for ``tls`` (None: a plain connection), TLS 1.2 at least.

    Raises :class:`TlsSettingsError` naming the setting (``{setting}.tls.…``) and the file that cannot be
    loaded, so the operator knows which line of which file to fix."""
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file))
    except OSError as exc:  # ssl.SSLError too
        raise TlsSettingsError(f"cannot load {setting}.tls.ca_file {tls.ca_file}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except OSError as exc:
            key = f" with {setting}.tls.key_file {tls.key_file}" if tls.key_file else ""
            raise TlsSettingsError(f"cannot load {setting}.tls.cert_file {tls.cert_file}{key}: {exc}") from exc
    context.check_hostname = tls.check_hostname
    return context


CLOCK_VERIFY_CODES: Final = frozenset({9, 10})
"""OpenSSL verify codes that depend on the clock (X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED)."""
NAME_VERIFY_CODES: Final = frozenset({62, 64})
"""X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: the certificate is not for the host connected to."""


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The failed verification of the broker's certificate behind ``exc``, if that is what it is.

    aiomqtt raises its MqttError ``from None`` while handling paho's error, so the ssl error is
    the MqttError's ``__context__``."""
    current: BaseException | None = exc
    for _ in range(8):  # bounded: a chain could loop
        if current is None or isinstance(current, ssl.SSLCertVerificationError):
            return current
        current = current.__cause__ or current.__context__
    return None
