"""Text patterns (`_like`, `_ilike`, `_nlike`, `_similar`) match as Postgres LIKE does, in bounded time (a hostile
pattern once froze every request, /health included); /health and other queries answer while a query holds the
store; a negative limit or offset is refused as Hasura refuses it."""
from __future__ import annotations

import threading
import time
import uuid
from typing import Callable, List

import pytest
import requests
from prefect import Client

from prefect_emulator.testing import Emulator

CREATE_PROJECT = "mutation($input: create_project_input!) { create_project(input: $input) { id } }"
PROJECTS = "query($where: project_bool_exp) { project(where: $where, order_by: {name: asc}) { name } }"


def create_projects(client: Client, names: List[str]) -> None:
    for name in names:
        client.graphql(CREATE_PROJECT, variables={"input": {"name": name, "tenant_id": client.tenant_id}})


def names_where(emulator: Emulator, where: dict) -> List[str]:
    answer = emulator.graphql(PROJECTS, {"where": where})
    assert "errors" not in answer, answer
    return [row["name"] for row in answer["data"]["project"]]


@pytest.fixture(scope="module")
def prefix(module_client: Client) -> str:
    """A unique prefix, and projects named with it: <p>abc, <p>aXc, <p>ABC, <p>50%off, <p>a_c, <p>a\\c."""
    prefix = "pat" + uuid.uuid4().hex[:6] + "-"
    create_projects(module_client, [prefix + n for n in ("abc", "aXc", "ABC", "50%off", "a_c", "a\\c", "abcabc")])
    return prefix


@pytest.mark.parametrize("op, pattern, expected", [
    ("_like", "abc", ["abc"]),
    ("_like", "a_c", ["aXc", "a\\c", "a_c", "abc"]),
    ("_like", "a%c", ["aXc", "a\\c", "a_c", "abc", "abcabc"]),
    ("_like", "%b%b%", ["abcabc"]),
    ("_like", "a\\_c", ["a_c"]),  # an escaped wildcard is itself
    ("_like", "50\\%%", ["50%off"]),
    ("_like", "a\\\\c", ["a\\c"]),
    ("_like", "abc%%abc", ["abcabc"]),
    ("_ilike", "abc", ["ABC", "abc"]),
    ("_nlike", "a%", ["50%off", "ABC"]),
    ("_nilike", "a%", ["50%off"]),
    ("_similar", "a_c", ["aXc", "a\\c", "a_c", "abc"]),
])
def test_pattern_matches_as_postgres_like(module_emulator: Emulator, prefix: str, op: str, pattern: str,
                                          expected: List[str]) -> None:
    where = {"name": {"_like": prefix + "%", op: prefix + pattern}}
    assert names_where(module_emulator, where) == sorted(prefix + n for n in expected)


def test_hostile_pattern_against_a_long_name_answers_at_once(module_emulator: Emulator,
                                                            module_client: Client) -> None:
    long_name = "long-" + uuid.uuid4().hex[:6] + "-" + "a" * 3000
    create_projects(module_client, [long_name])
    hostile = "%a" * 40 + "%b"  # as a backtracking regex: about 3000^40 steps
    started = time.perf_counter()
    assert names_where(module_emulator, {"name": {"_like": hostile}}) == []
    assert long_name in names_where(module_emulator, {"name": {"_like": "long-%" + "a%" * 40}})
    print(f"hostile LIKE against a 3,000-character name: {(time.perf_counter() - started) * 1000:.1f} ms "
          "for two queries")


def health(emulator: Emulator) -> bool:
    answer = requests.get(emulator.url + "/health", timeout=30)
    return answer.status_code == 200 and answer.json()["status"] == "ok"


def tenants(emulator: Emulator) -> bool:
    answer = requests.post(emulator.url, json={"query": "{ tenant { id } }"}, timeout=30)
    return answer.status_code == 200 and bool(answer.json()["data"]["tenant"])


@pytest.mark.parametrize("probe", [health, tenants], ids=["health", "another query"])
def test_others_are_answered_while_a_long_query_holds_the_store(module_emulator: Emulator, module_client: Client,
                                                                probe: Callable[[Emulator], bool]) -> None:
    # queries share the store's lock: neither /health nor another query waits for the long one to end (nor
    # behind the background services, which take the write lock only when they have work)
    create_projects(module_client, ["slow-" + uuid.uuid4().hex[:6] + "-" + "a" * 3000])
    # each clause costs about 1,500 x 1,500 steps against the long name: together a query of seconds. _ilike,
    # because the store leaves it to Python (SQLite's GLOB, which _like compiles to, ends such a query in 0.3 s)
    slow = {"_or": [{"name": {"_ilike": "%" + "_" * (1500 + i) + "b%"}} for i in range(400)]}
    finished = threading.Event()

    def query() -> None:
        try:
            requests.post(module_emulator.url, json={"query": PROJECTS, "variables": {"where": slow}}, timeout=120)
        finally:
            finished.set()

    thread = threading.Thread(target=query)
    started = time.monotonic()
    thread.start()
    try:
        time.sleep(0.3)  # the query is being executed, holding the store
        running_before = not finished.is_set()
        answered_well = probe(module_emulator)
        answered = time.monotonic() - started
        still_running = not finished.is_set()
    finally:
        thread.join(timeout=130)
    took = time.monotonic() - started
    print(f"{probe.__name__} answered {answered:.2f}s after a {took:.2f}s query started")
    assert answered_well
    if not running_before:
        pytest.skip(f"the slow query ended in {took:.2f}s, before the probe was sent: nothing to show here")
    assert still_running, f"{probe.__name__} waited for the long query to end ({took:.2f}s)"


@pytest.mark.parametrize("arguments, name", [("limit: -1", "limit"), ("offset: -1", "offset"),
                                             ("limit: 5, offset: -3", "offset")])
def test_negative_limit_or_offset_is_refused_as_hasura_does(module_emulator: Emulator, prefix: str,
                                                           arguments: str, name: str) -> None:
    for query in (f"{{ project({arguments}) {{ name }} }}",
                  f"{{ project(limit: 1) {{ flows({arguments}) {{ id }} }} }}",
                  f"{{ project_aggregate({arguments}) {{ aggregate {{ count }} }} }}"):
        answer = module_emulator.graphql(query)
        assert answer.get("errors"), (query, answer)
        message = answer["errors"][0]["message"]
        assert message.startswith("unexpected negative value") and f"{name}: -" in message, (query, message)


def test_zero_limit_and_offset_are_fine(module_emulator: Emulator, prefix: str) -> None:
    where = {"name": {"_like": prefix + "%"}}
    answer = module_emulator.graphql("query($w: project_bool_exp) { a: project(where: $w, limit: 0) { name } "
                                     "b: project(where: $w, offset: 0) { name } }", {"w": where})
    assert answer["data"]["a"] == [] and len(answer["data"]["b"]) == 7, answer
