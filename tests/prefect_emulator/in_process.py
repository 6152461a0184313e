"""An emulator in the test's own process: the real schema, store and request path (Emulator.run_request), with
a hook sender the test chooses, so that what cloud hooks would send is seen without calling the internet; and
the same over HTTP from a thread (InThread), whose background services the test runs itself."""
from __future__ import annotations

import datetime
import threading
from typing import Any, Dict, List, Optional

import prefect

from prefect_emulator.hook_sender import HookRequest, HookSender
from prefect_emulator.schema import build
from prefect_emulator.server import Emulator, Server
from prefect_emulator.services import LoopService
from prefect_emulator.store import Store
from prefect_emulator.timestamps import to_iso

_SCHEMA = build()  # building the schema takes a while; it holds no state


class Recorder:
    """A hook sender that records each request instead of making it."""

    def __init__(self) -> None:
        self.requests: List[HookRequest] = []
        self._lock = threading.Lock()

    def __call__(self, request: HookRequest) -> None:
        with self._lock:
            self.requests.append(request)


class InProcess:
    """One emulator with a fresh in-memory store.

    Args:
        sender: where hook calls go (a Recorder, or prefect_emulator.hook_sender.http_sender)
        cloud_hooks: False plays --no-cloud-hooks
    """

    def __init__(self, sender: Any = None, cloud_hooks: bool = True) -> None:
        self.hooks = HookSender(sender or Recorder(), enabled=cloud_hooks)
        self.emulator = Emulator(_SCHEMA, Store(), hook_sender=self.hooks)

    def answer(self, query: str, variables: Optional[dict] = None) -> Dict[str, Any]:
        """The whole answer to one operation."""
        return self.emulator.run_request({"query": query, "variables": variables}, {})[1]

    def data(self, query: str, variables: Optional[dict] = None) -> Dict[str, Any]:
        """`data` of one operation, failing on any error."""
        answer = self.answer(query, variables)
        assert not answer.get("errors"), answer
        return answer["data"]

    def mutate(self, name: str, input: dict, fields: str = "id") -> Dict[str, Any]:
        """Runs mutation `name` with `input`; returns its payload."""
        query = f"mutation ($input: {name}_input!) {{ {name}(input: $input) {{ {fields} }} }}"
        return self.data(query, {"input": input})[name]

    def flow_run(self, flow_name: str = "hooked") -> Dict[str, str]:
        """A tenant, a project, a flow and a Scheduled run of it; their ids and the flow's version group."""
        tenant = self.mutate("create_tenant", {"name": flow_name, "slug": flow_name})["id"]
        project = self.mutate("create_project", {"tenant_id": tenant, "name": "p"})["id"]
        flow = self.mutate("create_flow", {"project_id": project,
                                           "serialized_flow": prefect.Flow(flow_name).serialize()})["id"]
        run = self.mutate("create_flow_run", {"flow_id": flow})["id"]
        group = self.data("query ($id: uuid!) { flow_by_pk(id: $id) { version_group_id } }",
                          {"id": flow})["flow_by_pk"]["version_group_id"]
        return {"tenant_id": tenant, "project_id": project, "flow_id": flow, "flow_run_id": run,
                "version_group_id": group}

    def set_state(self, run_id: str, state: prefect.engine.state.State) -> Dict[str, Any]:
        """set_flow_run_states with one state; the whole answer (the hooks' calls are queued once it returns)."""
        query = ("mutation ($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
                 "{ states { status } } }")
        return self.answer(query, {"input": {"states": [{"flow_run_id": run_id, "state": state.serialize()}]}})


class InThread:
    """An emulator serving HTTP from a thread of the test's process (prefect's Client talks to it as to a
    process), with hooks recorded and no background loop: the test runs the services' rounds itself, as of the
    instant it chooses (`run_once`), and `log()` holds the lines those rounds logged, as the emulator's log
    would.

    Args:
        options: keyword arguments of Emulator (heartbeat_timeout, lazarus_stale_after, ...)
    """

    def __init__(self, **options: Any) -> None:
        self.emulator = Emulator(_SCHEMA, Store(), hook_sender=HookSender(Recorder()), **options)
        self.store = self.emulator.store
        self.server = Server(("127.0.0.1", 0), self.emulator)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.lines: List[str] = []

    def run_once(self, service: LoopService, now: datetime.datetime) -> Any:
        """One round of `service` (e.g. `self.emulator.lazarus`) as of `now`; keeps its log lines."""
        done = service.run_once(now)
        self.lines += service.report(done)
        return done

    def log(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def recent_and_stale(self, recent: str, stale: str, bound: float) -> datetime.datetime:
        """An instant at which flow run `recent`'s last heartbeat is within `bound` seconds (half of it) and
        flow run `stale`'s is past it: `stale`'s heartbeat is written back into the store to twice `bound`
        before that instant (as Server's tests write heartbeats in the database)."""
        stored = self.store.get("flow_run", recent)["heartbeat"]  # the canonical form: fromisoformat reads it
        now = datetime.datetime.fromisoformat(stored) + datetime.timedelta(seconds=bound / 2)
        with self.store.transaction():
            self.store.update("flow_run", stale, heartbeat=to_iso(now - datetime.timedelta(seconds=2 * bound)))
        return now

    def __enter__(self) -> "InThread":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.store.close()
