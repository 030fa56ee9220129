"""The throwaway CA's certificates complete a real TLS handshake both ways, and nothing else trusts them."""

import asyncio
import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulators.infra.certificates import CertificateFiles, write_certificates
from simulators.infra.ports import LOOPBACK


def _server_context(files: CertificateFiles) -> ssl.SSLContext:
    """A server that presents its certificate and demands a client certificate from the same CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    context.load_verify_locations(files.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _client_context(files: CertificateFiles, ca_cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_cert or files.ca_cert)
    context.load_cert_chain(files.client_cert, files.client_key)
    return context


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str) -> str:
    """Connect over TLS on loopback; the common name of the client certificate the server saw."""
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.set_result(dict(item[0] for item in peer["subject"])["commonName"])
        writer.close()

    listener = await asyncio.start_server(serve, LOOPBACK, 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(LOOPBACK, port, ssl=client, server_hostname=server_hostname)
        writer.close()
        return await asyncio.wait_for(seen, 10)
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost"])
async def test_server_and_client_certificates_complete_a_mutual_tls_handshake(
    tmp_path: Path, server_hostname: str
) -> None:
    files = write_certificates(tmp_path, client_name="gw-test")
    client_seen = await _handshake(_server_context(files), _client_context(files), server_hostname)
    assert client_seen == "gw-test"


async def test_a_second_ca_does_not_trust_the_first_ones_server(tmp_path: Path) -> None:
    files = write_certificates(tmp_path / "first")
    other = write_certificates(tmp_path / "second")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await _handshake(_server_context(files), _client_context(files, other.ca_cert), "127.0.0.1")


def test_the_server_certificate_names_its_hosts_and_each_leaf_its_purpose(tmp_path: Path) -> None:
    files = write_certificates(tmp_path, server_hosts=["127.0.0.1", "localhost", "broker.lan"])
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    client = x509.load_pem_x509_certificate(files.client_cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "broker.lan"]
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "127.0.0.1"
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    files = write_certificates(tmp_path)
    for key in (files.server_key, files.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_the_validity_period_is_the_one_asked_for(tmp_path: Path) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    files = write_certificates(tmp_path, valid_from=start, valid_for=timedelta(days=2))
    for path in (files.ca_cert, files.server_cert, files.client_cert):
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        assert (certificate.not_valid_before_utc, certificate.not_valid_after_utc) == (start, start + timedelta(days=2))


def test_a_server_certificate_needs_a_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one host"):
        write_certificates(tmp_path, server_hosts=[])
