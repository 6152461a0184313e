"""Messages as Prefect Server has them (api/messages.py, graphql/messages.py and their tests): Server writes them
through the PREFECT_MESSAGE cloud hook; the Notifications page marks them read or unread and deletes them."""
from __future__ import annotations

from prefect.engine.state import Failed

from tests.prefect_emulator.in_process import InProcess

UNKNOWN = "6f1c2a4e-9e4b-4f5e-8a1d-2b3c4d5e6f70"
MESSAGE_FIELDS = "id tenant_id read type text content"


def messages(emu: InProcess) -> list:
    return emu.data(f"{{ message(order_by: {{created: desc}}) {{ {MESSAGE_FIELDS} }} }}")["message"]


def test_a_prefect_message_hook_writes_a_cloud_hook_message_per_state_change() -> None:
    emu = InProcess()
    ids = emu.flow_run()
    emu.mutate("create_cloud_hook", {"tenant_id": ids["tenant_id"], "type": "PREFECT_MESSAGE", "states": ["FAILED"],
                                     "config": {}})
    emu.set_state(ids["flow_run_id"], Failed("it broke"))
    message, = messages(emu)
    assert message["tenant_id"] == ids["tenant_id"] and message["read"] is False
    assert message["type"] == "CLOUD_HOOK" and message["text"] is None
    assert message["content"]["type"] == "CLOUD_HOOK"
    event = message["content"]["event"]
    assert event["flow_run"]["id"] == ids["flow_run_id"] and event["state"]["state"] == "Failed"
    state_id = emu.data(f"{{ flow_run_state(where: {{flow_run_id: {{_eq: \"{ids['flow_run_id']}\"}}, "
                        f"state: {{_eq: \"Failed\"}}}}) {{ id }} }}")["flow_run_state"][0]["id"]
    assert event["state"]["id"] == state_id


def test_mark_read_unread_and_delete() -> None:
    emu = InProcess()
    ids = emu.flow_run()
    hook = emu.mutate("create_cloud_hook", {"tenant_id": ids["tenant_id"], "type": "PREFECT_MESSAGE",
                                            "states": ["FAILED"], "config": {}})["id"]
    assert emu.mutate("test_cloud_hook", {"cloud_hook_id": hook}, "success")["success"] is True
    message_id = messages(emu)[0]["id"]
    assert emu.mutate("mark_message_as_read", {"message_id": message_id}, "success")["success"] is True
    assert messages(emu)[0]["read"] is True
    assert emu.mutate("mark_message_as_unread", {"message_id": message_id}, "success")["success"] is True
    assert messages(emu)[0]["read"] is False
    assert emu.mutate("delete_message", {"message_id": message_id}, "success")["success"] is True
    assert messages(emu) == []


def test_an_unknown_message_answers_success_false() -> None:
    emu = InProcess()
    for name in ("mark_message_as_read", "mark_message_as_unread", "delete_message"):
        assert emu.mutate(name, {"message_id": UNKNOWN}, "success error") == {"success": False, "error": None}


def test_deleting_a_tenant_deletes_its_messages_and_hooks() -> None:
    emu = InProcess()
    ids = emu.flow_run()
    hook = emu.mutate("create_cloud_hook", {"tenant_id": ids["tenant_id"], "type": "PREFECT_MESSAGE",
                                            "states": ["FAILED"], "config": {}})["id"]
    emu.mutate("test_cloud_hook", {"cloud_hook_id": hook}, "success")
    emu.mutate("delete_tenant", {"tenant_id": ids["tenant_id"], "confirm": True}, "success")
    assert messages(emu) == [] and emu.data("{ cloud_hook { id } }")["cloud_hook"] == []
