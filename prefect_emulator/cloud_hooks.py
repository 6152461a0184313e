"""Cloud hooks as Prefect Server 1.4.1 has them (api/cloud_hooks.py, graphql/cloud_hooks.py).

A hook names flow run states (and optionally one version group); each flow run state change that matches an
active hook of the run's tenant calls it with Server's payload:
- WEBHOOK: POST {"event": <FlowRunStateChange>} to its url, header X-PREFECT-EVENT-ID, timeout 2 s;
- SLACK_WEBHOOK: POST Slack blocks naming the run, the flow, the state, its message and a link (timeout 1 s);
- TWILIO: one form POST to Twilio's Messages API per number in `to` (basic auth, timeout 2 s);
- PAGERDUTY: POST an Events API v2 "trigger" to PagerDuty (timeout 2 s);
- PREFECT_MESSAGE: a CLOUD_HOOK message in the `message` table (the Notifications page).

As on Server (which starts them with asyncio.create_task after the state is written), the calls never run on
the request path: the state change only records them; once its transaction commits they are handed to a few
worker threads (hook_sender.py), so a slow or dead address never delays or fails a state change, and a state
change that is rolled back calls nothing. Each failure is logged (a CLOUD-HOOK line). PREFECT_MESSAGE writes
its row in the state change's own transaction: it calls nothing.

The event carries the fields Server selects for it (the run's id, name, state and version before the
change; the new state row; the flow's id, name, flow_group_id and version_group_id; the tenant's id and slug).

Hooks make the emulator call addresses that API clients choose: `--no-cloud-hooks` stores hooks but never
calls them (test_cloud_hook then answers success false saying so).
"""
from __future__ import annotations

import base64
import uuid
from typing import Any, Callable, Dict, List, Tuple

from prefect.engine.state import Failed, Running, Scheduled, State, Submitted, Success

from . import messages
from .context import RequestContext
from .errors import ApiError
from .hook_sender import HookRequest
from .row_mutations import deleting, setting
from .timestamps import now

HOOK_TYPES = ("WEBHOOK", "SLACK_WEBHOOK", "PREFECT_MESSAGE", "TWILIO", "PAGERDUTY")  # Server's CLOUD_HOOK_TYPES
ALL_STATES = frozenset(cls.__name__.upper() for cls in State.children())  # Server's ALL_STATES
LINK_BASE = "http://localhost:4200"  # Server's config api.url, which its links start with
TWILIO_URL = "https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SEVERITIES = ("info", "warning", "error", "critical")
TEST_STATES = {"SCHEDULED": Scheduled("Test scheduled state"), "SUBMITTED": Submitted("Test submitted state"),
               "RUNNING": Running("Test running state"), "SUCCESS": Success("Test success state"),
               "FAILED": Failed("Test failed state")}

SDL = '''
enum cloud_hook_type { PAGERDUTY SLACK_WEBHOOK TWILIO WEBHOOK PREFECT_MESSAGE }
enum test_cloud_hook_state_type { SCHEDULED SUBMITTED SUCCESS RUNNING FAILED }
type cloud_hook_id_payload { id: UUID }
input create_cloud_hook_input {
  tenant_id: UUID! type: cloud_hook_type! name: String version_group_id: String states: [String!]! config: JSON
}
input test_cloud_hook_input { cloud_hook_id: UUID! flow_run_id: UUID state_type: test_cloud_hook_state_type }
input delete_cloud_hook_input { cloud_hook_id: UUID! }
input set_cloud_hook_active_input { cloud_hook_id: UUID! }
input set_cloud_hook_inactive_input { cloud_hook_id: UUID! }
extend type Mutation {
  create_cloud_hook(input: create_cloud_hook_input!): cloud_hook_id_payload
  test_cloud_hook(input: test_cloud_hook_input!): success_payload
  delete_cloud_hook(input: delete_cloud_hook_input!): success_payload
  set_cloud_hook_active(input: set_cloud_hook_active_input!): success_payload
  set_cloud_hook_inactive(input: set_cloud_hook_inactive_input!): success_payload
}
'''

# the config keys each type requires, exactly, with Server's error when they differ
_CONFIG_KEYS: Dict[str, Tuple[frozenset, str]] = {
    "WEBHOOK": (frozenset({"url"}), "Invalid config; expected `url`"),
    "SLACK_WEBHOOK": (frozenset({"url"}), "Invalid config; expected `url`"),
    "TWILIO": (frozenset({"account_sid", "auth_token", "messaging_service_sid", "to"}),
               "Invalid config; expected `account_sid`, `auth_token`, `messaging_service_sid`, and `to`"),
    "PAGERDUTY": (frozenset({"api_token", "routing_key", "severity"}),
                  "Invalid config; expected `api_token`, `routing_key`, & `severity`"),
}


# -------------------------------------------------------------------------------------------- the event
def _event(run: dict, old: dict, state_row: dict, flow: dict, tenant: dict, is_test: bool = False) -> dict:
    """Server's FlowRunStateChange as its JSON: the fields Server selects (module doc)."""
    return {
        "id": str(uuid.uuid4()), "timestamp": now(), "type": "FlowRunStateChange", "is_test_event": is_test,
        "flow_run": {"id": run["id"], "name": run.get("name"), "state": old.get("state"),
                     "version": old.get("version"), "tenant_id": run.get("tenant_id"),
                     "flow": flow, "tenant": tenant},
        "state": state_row, "flow": flow, "tenant": tenant,
    }


def _link(event: dict) -> str:
    return f"{LINK_BASE}/{event['tenant'].get('slug')}/flow-run/{event['flow_run']['id']}"


def requests_for(hook: dict, event: dict) -> List[HookRequest]:
    """The calls `hook` makes for `event`, as Server's _call_* functions make them (PREFECT_MESSAGE: none)."""
    kind, config = hook["type"], hook.get("config") or {}
    state = event["state"]["state"]
    message = (event["state"].get("serialized_state") or {}).get("message")
    run_name, flow_name = event["flow_run"]["name"], event["flow"]["name"]
    if kind == "WEBHOOK":
        return [HookRequest(kind, config["url"], json={"event": event}, headers={"X-PREFECT-EVENT-ID": event["id"]})]
    if kind == "SLACK_WEBHOOK":
        texts = [f"Run `{run_name}` of flow `{flow_name}` entered a new state:", f"*State:* `{state}`",
                 f"*Message:* {message}", f"*Link:* {_link(event)}"]
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in texts]
        return [HookRequest(kind, config["url"], json={"blocks": blocks}, timeout=1.0)]
    if kind == "TWILIO":
        token = base64.b64encode(f"{config['account_sid']}:{config['auth_token']}".encode()).decode()
        body = f"Run {run_name} of flow {flow_name} entered a new state: {state}. \n Link: {_link(event)}"
        return [HookRequest(kind, TWILIO_URL.format(account_sid=config["account_sid"]),
                            form={"To": number, "From": config["messaging_service_sid"], "Body": body},
                            headers={"Authorization": f"Basic {token}"}) for number in config["to"]]
    if kind == "PAGERDUTY":
        slug = event["tenant"].get("slug")
        return [HookRequest(kind, PAGERDUTY_URL, headers={"Authorization": f"Token token={config['api_token']}"},
                            json={
            "routing_key": config["routing_key"], "event_action": "trigger",
            "payload": {"summary": f"Run {run_name} entered a new state: {state}", "severity": config["severity"],
                        "source": f"cloud.prefect.io/{slug}", "component": flow_name, "group": run_name,
                        "class": f"State->{state}",
                        "custom_details": {"flow": flow_name, "flow_run": run_name, "state": state,
                                           "state_message": message or "", "tenant_slug": slug}},
            "links": [{"href": _link(event), "text": f"Flow Run {run_name}"}]})]
    return []


def _fire(ctx: RequestContext, hook: dict, event: dict) -> None:
    """Calls one hook for one event: PREFECT_MESSAGE at once (in the transaction), the others after commit."""
    if ctx.hooks is None or not ctx.hooks.enabled:
        return
    if hook["type"] == "PREFECT_MESSAGE":
        messages.create_message(ctx, "CLOUD_HOOK", {"event": event, "type": "CLOUD_HOOK"}, event["tenant"]["id"])
        return
    for request in requests_for(hook, event):
        ctx.after_commit.append(lambda request=request: ctx.hooks.submit(hook["id"], request))  # type: ignore


def flow_run_state_changed(ctx: RequestContext, old: dict, run: dict, state_row: dict) -> None:
    """Fires the matching hooks for a flow run that moved to `state_row` (states.write_flow_run_state).

    Args:
        old: the run before the change; run: after it; state_row: the new flow_run_state row
    """
    if ctx.hooks is None or not ctx.hooks.enabled:
        return
    flow_row = ctx.store.get("flow", run["flow_id"]) or {}
    state = (state_row.get("state") or "").upper()
    hooks = [h for h in ctx.store.find("cloud_hook", "tenant_id", run["tenant_id"])
             if h["active"] and state in (h.get("states") or [])
             and h.get("version_group_id") in (None, flow_row.get("version_group_id"))]
    if not hooks:
        return
    tenant_row = ctx.store.get("tenant", run["tenant_id"]) or {}
    flow = {k: flow_row.get(k) for k in ("id", "name", "flow_group_id", "version_group_id")}
    event = _event(run, old, state_row, flow, {"id": tenant_row.get("id"), "slug": tenant_row.get("slug")})
    for hook in hooks:
        _fire(ctx, hook, event)


# ------------------------------------------------------------------------------------------- mutations
def create_cloud_hook(ctx: RequestContext, input: Dict[str, Any]) -> dict:
    """Mutation create_cloud_hook, with Server's checks and messages; returns {id}."""
    if not input.get("tenant_id") or ctx.store.get("tenant", input["tenant_id"]) is None:
        raise ApiError("Invalid tenant ID")
    states: List[str] = []
    for name in input.get("states") or []:
        if name.upper() not in states:
            states.append(name.upper())
    if not states or not all(s in ALL_STATES for s in states):
        raise ApiError("Invalid states")
    kind, config = input["type"], input.get("config")
    if kind not in HOOK_TYPES:
        raise ApiError("Invalid cloud hook type")
    if kind in _CONFIG_KEYS:
        keys, message = _CONFIG_KEYS[kind]
        if not isinstance(config, dict) or set(config) != keys:
            raise ApiError(message)
        if kind == "TWILIO" and (not isinstance(config["to"], list) or not config["to"]):
            raise ApiError(message)
        if kind == "PAGERDUTY" and config["severity"] not in PAGERDUTY_SEVERITIES:
            raise ApiError("Invalid config; severity must be one of {info, warning, error, critical}")
    row = ctx.store.insert("cloud_hook", {
        "tenant_id": input["tenant_id"], "version_group_id": input.get("version_group_id"),
        "config": config if config is not None else {}, "type": kind, "states": states, "active": True,
        "name": input.get("name"),
    })
    return {"id": row["id"]}


def test_cloud_hook(ctx: RequestContext, input: Dict[str, Any]) -> dict:
    """Mutation test_cloud_hook: calls the hook once, now, with a test event (from the flow run when given);
    any failure is answered as `success: false` with its text, as Server does."""
    try:
        hook = ctx.store.get("cloud_hook", input["cloud_hook_id"])
        if hook is None:
            raise ApiError("Invalid ID")
        state = TEST_STATES.get(input.get("state_type") or "", Success("Test success state"))
        serialized = state.serialize()
        state_row = {"version": 1, "state": serialized["type"], "serialized_state": serialized}
        run = ctx.store.get("flow_run", input["flow_run_id"]) if input.get("flow_run_id") else None
        if input.get("flow_run_id") and run is None:  # Server fails here too, with an AttributeError's text
            raise ApiError(f"Invalid flow run ID: {input['flow_run_id']} does not exist.")
        if run is not None:
            flow_row = ctx.store.get("flow", run["flow_id"]) or {}
            tenant_row = ctx.store.get("tenant", run["tenant_id"]) or {}
            flow = {k: flow_row.get(k) for k in ("id", "tenant_id", "name", "environment", "version_group_id")}
            new_run = dict(run, version=(run.get("version") or 0) + 1)
            event = _event(new_run, new_run, state_row, flow, {"id": tenant_row.get("id"),
                                                               "slug": tenant_row.get("slug")}, is_test=True)
        else:
            event = _event({"id": str(uuid.uuid4()), "name": "cloud-hook-test", "tenant_id": hook["tenant_id"]}, {},
                           state_row, {"id": str(uuid.uuid4()), "name": "Cloud Hook Test Flow"},
                           {"id": hook["tenant_id"], "slug": "test-slug"}, is_test=True)
        if ctx.hooks is None or not ctx.hooks.enabled:
            raise ApiError("Cloud hooks are turned off on this emulator (--no-cloud-hooks).")
        if hook["type"] == "PREFECT_MESSAGE":
            messages.create_message(ctx, "CLOUD_HOOK", {"event": event, "type": "CLOUD_HOOK"}, hook["tenant_id"])
        for request in requests_for(hook, event):
            ctx.hooks.call_now(hook["id"], request)
        return {"success": True, "error": None}
    except Exception as exc:
        return {"success": False, "error": str(exc)}


RESOLVERS: Dict[str, Callable] = {
    "create_cloud_hook": create_cloud_hook,
    "delete_cloud_hook": deleting("cloud_hook", "cloud_hook_id", "Mutation delete_cloud_hook."),
    "set_cloud_hook_active": setting("cloud_hook", "cloud_hook_id", "Mutation set_cloud_hook_active.", active=True),
    "set_cloud_hook_inactive": setting("cloud_hook", "cloud_hook_id", "Mutation set_cloud_hook_inactive.",
                                       active=False),
    "test_cloud_hook": test_cloud_hook,
}
