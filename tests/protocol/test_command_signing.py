"""Command signatures cover the attachment a command carries, and nothing new for one without."""

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.command_signing import command_document, sign_command, verify_command
from protocol.errors import ConfigSignatureError
from protocol.messages import Command, CommandName

KEY = Ed25519PrivateKey.generate()


def _command(attachment: bytes | None) -> Command:
    request_id = uuid.uuid4()
    return Command(
        gateway_id="gw-1",
        seq=1,
        event_id=request_id,
        ts=1_800_000_000_000,
        request_id=request_id,
        name=CommandName.INSTALL_CERTIFICATE if attachment is not None else CommandName.DIAGNOSTICS,
        attachment=attachment,
    )


def test_a_command_without_an_attachment_signs_what_it_signed_before_attachments_existed() -> None:
    assert set(command_document(_command(None))) == {
        "purpose", "gateway_id", "request_id", "event_id", "name", "args", "requested_by", "reason", "ts",
        "timeout_s",
    }  # fmt: skip


def test_an_attachment_swapped_after_signing_does_not_verify() -> None:
    command = _command(b"-----BEGIN CERTIFICATE-----\none\n")
    signature = sign_command(KEY, command)
    verify_command(KEY.public_key(), command, signature)

    swapped = command.model_copy(update={"attachment": b"-----BEGIN CERTIFICATE-----\ntwo\n"})
    dropped = command.model_copy(update={"attachment": None})
    for forged in (swapped, dropped):
        with pytest.raises(ConfigSignatureError):
            verify_command(KEY.public_key(), forged, signature)
