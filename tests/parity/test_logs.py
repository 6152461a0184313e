"""Parity: run logs (write_run_logs) as Prefect Server 1.4.1 (release 2022.09.23) stores them.

Ports PrefectHQ/server `tests/graphql/test_logs.py` (6 cases: TestWriteRunLogs) and the GraphQL-reachable
cases of `tests/api/test_logs.py` (3 of 4 collected cases), sent over HTTP and read back through Hasura.

Left out of tests/api/test_logs.py: test_create_logs_with_bad_flow_run_ids_still_inserts_good_logs (its bad
ids are "" and None, which write_run_logs' `flow_run_id: UUID!` refuses before Server's code runs).
test_create_logs_without_tenant_id_fails and test_create_logs_with_bad_tenant_id_fails are nested inside
other test functions in Server's file, so pytest never collects them; they are not Server cases.
Adapted: the tests/api cases select logs by flow run, not also by tenant_id: they pass tenant_id to the
Python API, which write_run_logs cannot (Server stores GraphQL-written logs with a null tenant_id; the
emulator fills in the run's tenant, see its README). test_create_flow_run_logs_requires_flow_run_id_for_all_logs
asserts "Expected non-nullable type" and "UUID!" separately, since graphql-core 3.2 (and Apollo's graphql-js)
quote the type name where Server's graphql-core 3.0 did not.
"""
from __future__ import annotations

import pendulum

from tests.parity.runs_setup import when
from tests.parity.runs_setup import runs  # noqa: F401  (a fixture: pytest finds it by this name)


WRITE = "mutation($input: write_run_logs_input!) { write_run_logs(input: $input) { success } }"


def logs_of(api, flow_run_id, where="", fields="message task_run_id info timestamp name level"):
    """The logs of a flow run (with an extra Hasura condition in `where`)."""
    return api.data(f"query($id: uuid!) {{ log(where: {{flow_run_id: {{_eq: $id}} {where}}}) {{ {fields} }} }}",
                    {"id": flow_run_id})["log"]


def write(api, logs):
    """write_run_logs with these log inputs; returns its `success`."""
    return api.data(WRITE, {"input": {"logs": logs}})["write_run_logs"]["success"]


# ------------------------------------------------------------------ tests/graphql/test_logs.py
class TestWriteRunLogs:
    def test_create_flow_run_logs(self, api, runs):
        assert write(api, [dict(flow_run_id=runs.flow_run_id, message="test") for _ in range(10)])
        found = logs_of(api, runs.flow_run_id)
        assert len(found) == 10
        assert all(log["message"] == "test" and log["task_run_id"] is None for log in found)

    def test_create_task_run_logs(self, api, runs):
        task_run_id = runs.task_run_id
        assert write(api, [dict(flow_run_id=runs.flow_run_id, task_run_id=task_run_id, message="test")
                           for _ in range(14)])
        found = logs_of(api, runs.flow_run_id, f'task_run_id: {{_eq: "{task_run_id}"}}')
        assert len(found) == 14 and all(log["message"] == "test" for log in found)

    def test_create_logs_with_options(self, api, runs):
        timestamp = pendulum.datetime(2019, 1, 1, 1, 1, 1)
        payload = dict(flow_run_id=runs.flow_run_id, message="test", level="CRITICAL", name="test-logger",
                       info={"a": [1, 2, 3]}, timestamp=timestamp.isoformat())
        assert write(api, [payload for _ in range(6)])
        found = logs_of(api, runs.flow_run_id)
        assert len(found) == 6
        assert all((log["message"], log["info"], when(log["timestamp"]), log["name"], log["level"]) == (
            "test", {"a": [1, 2, 3]}, timestamp, "test-logger", "CRITICAL") for log in found)

    def test_create_logs_with_invalid_level_fails(self, api, runs):
        message = api.error(WRITE, {"input": {"logs": [dict(flow_run_id=runs.flow_run_id, message="test",
                                                            level="bad-level")]}})
        assert "got invalid value 'bad-level'" in message

    def test_diverse_payloads(self, api, runs):
        levels = ["ERROR", "CRITICAL", "INFO", "INFO"]
        names = ["test-logger", "foo", "bar", "chris"]
        timestamps = [pendulum.datetime(2019, i + 1, 1, 1, 1, 1) for i in range(4)]
        infos = [{letter: list(range(i + 1))} for i, letter in enumerate("abcd")]
        messages = ["do", "rae", "me", "fa"]
        write(api, [dict(flow_run_id=runs.flow_run_id, message=messages[i], level=levels[i], name=names[i],
                         info=infos[i], timestamp=timestamps[i].isoformat()) for i in range(4)])
        found = logs_of(api, runs.flow_run_id)
        assert len(found) == 4
        assert {log["message"] for log in found} == set(messages)
        assert {log["level"] for log in found} == set(levels)
        assert {log["name"] for log in found} == set(names)
        assert {when(log["timestamp"]) for log in found} == set(timestamps)
        assert all(info in [log["info"] for log in found] for info in infos)

    def test_create_flow_run_logs_requires_flow_run_id_for_all_logs(self, api, runs):
        count = len(logs_of(api, runs.flow_run_id))
        logs = [dict(flow_run_id=runs.flow_run_id, message="test") for _ in range(9)]
        logs.append(dict(flow_run_id=None, message="test"))
        message = api.error(WRITE, {"input": {"logs": logs}})
        assert "Expected non-nullable type" in message and "UUID!" in message
        assert len(logs_of(api, runs.flow_run_id)) == count


# ------------------------------------------------------------------ tests/api/test_logs.py
def test_create_logs(api, runs):
    before = pendulum.now("utc")
    write(api, [dict(flow_run_id=runs.flow_run_id)])
    (log,) = logs_of(api, runs.flow_run_id)
    assert when(log["timestamp"]) > before
    assert (log["level"], log["task_run_id"]) == ("INFO", None)


def test_create_logs_with_task_run_id(api, runs):
    task_run_id = runs.task_run_id
    write(api, [dict(flow_run_id=runs.flow_run_id, task_run_id=task_run_id)])
    found = logs_of(api, runs.flow_run_id, f'task_run_id: {{_eq: "{task_run_id}"}}')
    assert [log["task_run_id"] for log in found] == [task_run_id]


def test_create_logs_with_info(api, runs):
    timestamp = pendulum.datetime(2018, 1, 1)
    write(api, [dict(flow_run_id=runs.flow_run_id, timestamp=timestamp.isoformat(), info={"lineno": 5},
                     level="ERROR", name="Test", message="test message")])
    (log,) = logs_of(api, runs.flow_run_id)
    assert (when(log["timestamp"]), log["level"], log["info"], log["message"], log["name"]) == (
        timestamp, "ERROR", {"lineno": 5}, "test message", "Test")
