"""The dynamic security commands as JSON, the control message, and the plugin's answers read back."""

import json

import pytest

from fleet.broker_access import commands
from fleet.broker_access.acls import DENY_ALL, Acl, AclType
from fleet.broker_access.commands import Command, encode_batch
from fleet.broker_access.provisioning import ensure_role_commands
from fleet.broker_access.responses import BrokerClient, CommandResponse, decode_responses, raise_for_errors, refusal
from fleet.errors import (
    BrokerAccessConflictError,
    BrokerAccessNotFoundError,
    BrokerAccessRefusedError,
    FleetError,
    TransientError,
)

ACL = Acl(AclType.PUBLISH_CLIENT_SEND, "outpost/v1/v1/gw-a/alert")


def test_create_client_carries_the_password_and_roles_but_its_repr_does_not() -> None:
    command = commands.create_client("gw-a", "s3cret-pass", roles=["outpost-gateway-gw-a"], textname="gateway")

    assert command.to_json("c-1") == {
        "command": "createClient",
        "username": "gw-a",
        "password": "s3cret-pass",
        "roles": [{"rolename": "outpost-gateway-gw-a"}],
        "textname": "gateway",
        "correlationData": "c-1",
    }
    assert "s3cret-pass" not in repr(command)
    assert "s3cret-pass" not in str(command)
    assert str(command) == "createClient gw-a"


def test_set_client_password_keeps_the_password_out_of_its_repr() -> None:
    command = commands.set_client_password("gw-a", "new-pass")

    assert command.to_json("x") == {
        "command": "setClientPassword",
        "username": "gw-a",
        "password": "new-pass",
        "correlationData": "x",
    }
    assert "new-pass" not in repr(command)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (commands.delete_client("gw-a"), {"command": "deleteClient", "username": "gw-a"}),
        (commands.disable_client("gw-a"), {"command": "disableClient", "username": "gw-a"}),
        (commands.enable_client("gw-a"), {"command": "enableClient", "username": "gw-a"}),
        (commands.get_client("gw-a"), {"command": "getClient", "username": "gw-a"}),
        (commands.list_clients(), {"command": "listClients", "verbose": False, "count": -1, "offset": 0}),
        (commands.delete_role("r"), {"command": "deleteRole", "rolename": "r"}),
        (commands.get_role("r"), {"command": "getRole", "rolename": "r"}),
        (commands.add_client_role("gw-a", "r"), {"command": "addClientRole", "username": "gw-a", "rolename": "r"}),
        (
            commands.add_client_role("gw-a", "r", priority=3),
            {"command": "addClientRole", "username": "gw-a", "rolename": "r", "priority": 3},
        ),
        (
            commands.add_role_acl("r", ACL),
            {
                "command": "addRoleACL",
                "rolename": "r",
                "acltype": "publishClientSend",
                "topic": "outpost/v1/v1/gw-a/alert",
                "allow": True,
            },
        ),
        (commands.get_default_acl_access(), {"command": "getDefaultACLAccess"}),
    ],
)
def test_simple_commands(command: Command, expected: dict[str, object]) -> None:
    assert command.to_json("id") == {**expected, "correlationData": "id"}


def test_create_and_modify_role_carry_the_acls() -> None:
    acl_json = [ACL.to_json()]

    assert commands.create_role("r", [ACL]).to_json("1") == {
        "command": "createRole",
        "rolename": "r",
        "acls": acl_json,
        "correlationData": "1",
    }
    assert commands.modify_role("r", [ACL]).to_json("2") == {
        "command": "modifyRole",
        "rolename": "r",
        "acls": acl_json,
        "correlationData": "2",
    }


def test_ensuring_a_role_creates_it_then_sets_its_acls() -> None:
    batch = ensure_role_commands("r", [ACL])

    assert [command.name for command in batch] == ["createRole", "modifyRole"]
    assert all(command.to_json("x")["acls"] == [ACL.to_json()] for command in batch)


def test_deny_all_denies_every_default_access() -> None:
    assert commands.set_default_acl_access(DENY_ALL).to_json("d") == {
        "command": "setDefaultACLAccess",
        "acls": [
            {"acltype": "publishClientSend", "allow": False},
            {"acltype": "publishClientReceive", "allow": False},
            {"acltype": "subscribe", "allow": False},
            {"acltype": "unsubscribe", "allow": False},
        ],
        "correlationData": "d",
    }


def test_a_batch_tags_each_command_with_its_correlation_id() -> None:
    payload = encode_batch([commands.get_client("a"), commands.delete_client("b")], ["p-1", "p-2"])

    assert json.loads(payload) == {
        "commands": [
            {"command": "getClient", "username": "a", "correlationData": "p-1"},
            {"command": "deleteClient", "username": "b", "correlationData": "p-2"},
        ]
    }
    with pytest.raises(ValueError, match="2 commands but 1 correlation ids"):
        encode_batch([commands.get_client("a"), commands.get_client("b")], ["p-1"])


def test_answers_are_read_with_their_errors_data_and_correlation() -> None:
    payload = json.dumps(
        {
            "responses": [
                {"command": "createClient", "correlationData": "p-1"},
                {"command": "createClient", "error": "Client already exists", "correlationData": "p-2"},
                {"command": "getClient", "data": {"client": {"username": "a"}}, "correlationData": "p-3"},
                {"command": "Unknown command", "error": "Payload not valid JSON"},
                "not an object",
                {"no": "command"},
            ]
        }
    ).encode()

    assert decode_responses(payload) == [
        CommandResponse("createClient", correlation_data="p-1"),
        CommandResponse("createClient", error="Client already exists", correlation_data="p-2"),
        CommandResponse("getClient", data={"client": {"username": "a"}}, correlation_data="p-3"),
        CommandResponse("Unknown command", error="Payload not valid JSON"),
    ]


@pytest.mark.parametrize("payload", [b"[]", b'{"commands": []}', b'{"responses": {}}'])
def test_a_message_without_a_responses_list_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match="no 'responses' list"):
        decode_responses(payload)


def test_bad_json_is_refused() -> None:
    with pytest.raises(ValueError):  # json.JSONDecodeError is a ValueError
        decode_responses(b"{")


@pytest.mark.parametrize(
    ("error", "exception"),
    [
        ("Client not found", BrokerAccessNotFoundError),
        ("Role not found", BrokerAccessNotFoundError),
        ("Client already exists", BrokerAccessConflictError),
        ("Role already exists", BrokerAccessConflictError),
        ("Invalid/missing password", BrokerAccessRefusedError),
    ],
)
def test_refusals_become_fleet_errors_that_are_not_transient(error: str, exception: type[Exception]) -> None:
    command = commands.set_client_password("gw-a", "secret-pw")

    refused = refusal(command, CommandResponse("setClientPassword", error=error))

    assert type(refused) is exception
    assert isinstance(refused, FleetError)
    assert not isinstance(refused, TransientError)
    assert (refused.command, refused.error) == ("setClientPassword", error)
    assert str(refused) == f"the broker refused setClientPassword gw-a: {error}"
    assert "secret-pw" not in str(refused)


def test_raise_for_errors_raises_the_first_refusal_only() -> None:
    batch = [commands.get_client("a"), commands.delete_client("b"), commands.enable_client("c")]
    ok = CommandResponse("getClient")

    raise_for_errors(batch, [ok, CommandResponse("deleteClient"), CommandResponse("enableClient")])
    with pytest.raises(BrokerAccessNotFoundError, match="deleteClient b"):
        raise_for_errors(
            batch,
            [
                ok,
                CommandResponse("deleteClient", error="Client not found"),
                CommandResponse("enableClient", error="Invalid/missing username"),
            ],
        )


def test_a_client_is_read_from_get_client() -> None:
    data: dict[str, object] = {
        "client": {"username": "gw-a", "roles": [{"rolename": "r1"}, {"rolename": "r2"}], "groups": []}
    }

    assert BrokerClient.from_response(CommandResponse("getClient", data=data)) == BrokerClient(
        "gw-a", ("r1", "r2"), disabled=False
    )
    data = {"client": {"username": "gw-a", "disabled": True, "roles": []}}
    assert BrokerClient.from_response(CommandResponse("getClient", data=data)).disabled
    with pytest.raises(ValueError, match="without a client"):
        BrokerClient.from_response(CommandResponse("getClient"))
