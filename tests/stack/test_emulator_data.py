"""The offline stack keeps its data: the emulator stores to the emulator-data volume, so `restart emulator`,
`up --build` (a new container) and `down` without -v lose no flow, run, state or log; `down -v` drops them.
Only the tutorial DAG's service runs (with init, the emulator and the Dask scheduler)."""
from __future__ import annotations

import time
from typing import Dict, Iterator, Tuple

import pytest

from tests.stack.conftest import running_stack
from tests.stack.stack import Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HELLO = "flow-test-hello"
SERVICES = (f"dag-{HELLO}",)


def snapshot(stack: Stack) -> Dict[str, object]:
    """What a user would not want to lose: every flow version, and every run with its states and logs."""
    data = stack.graphql("{ flow { id name version } flow_run { id state states { state } logs { message } } }")
    return {
        "flows": sorted((f["id"], f["name"], f["version"]) for f in data["flow"]),
        "runs": sorted((r["id"], r["state"], tuple(sorted(s["state"] for s in r["states"])),
                        len(r["logs"])) for r in data["flow_run"]),
    }


@pytest.fixture(scope="module")
def stack_with_a_run(built_image: str) -> Iterator[Tuple[Stack, Dict[str, object]]]:
    with running_stack(services=SERVICES) as stk:
        run_id = stk.create_run(stk.latest_flow_id(HELLO))
        [run] = stk.wait_for_runs([run_id], timeout=300)
        assert run["state"] == "Success", run
        before = snapshot(stk)
        assert before["runs"] and before["flows"], before
        yield stk, before


def timed(label: str, stack: Stack, *steps: Tuple[str, ...]) -> None:
    """Runs compose commands one after the other and prints how long they took together."""
    started = time.monotonic()
    for step in steps:
        stack.run(*step, timeout=600)
    print(f"{label}: {time.monotonic() - started:.1f} s")


def test_restart_of_the_emulator_loses_nothing(stack_with_a_run):
    stack, before = stack_with_a_run
    timed("restart emulator", stack, ("restart", "emulator"))
    stack.up("--no-build", *SERVICES)
    assert snapshot(stack) == before


def test_up_build_with_a_new_emulator_container_loses_nothing(stack_with_a_run):
    stack, before = stack_with_a_run
    old = {c["id"] for c in stack.containers() if c["service"] == "emulator"}
    # --force-recreate: what `up --build` does when the image changed, even when (here) it did not
    stack.up("--build", "--force-recreate", *SERVICES)
    new = {c["id"] for c in stack.containers() if c["service"] == "emulator"}
    assert new and not new & old, "the emulator container was not replaced"
    assert snapshot(stack) == before


def test_down_without_v_then_up_loses_nothing_and_a_new_run_still_succeeds(stack_with_a_run):
    stack, before = stack_with_a_run
    stack.run("down", "--timeout", "5", timeout=300)
    assert stack.containers(all_states=True) == []
    stack.up("--no-build", *SERVICES)
    assert snapshot(stack) == before
    # the agents work against the kept tenant: a new run ends in Success
    [run] = stack.wait_for_runs([stack.create_run(stack.latest_flow_id(HELLO))], timeout=300)
    assert run["state"] == "Success", run
    before["runs"] = snapshot(stack)["runs"]


def test_down_v_drops_every_flow_and_run(stack_with_a_run):
    stack, before = stack_with_a_run
    stack.down()
    stack.up("--no-build", *SERVICES)
    after = snapshot(stack)
    assert after["runs"] == [], "a run survived `down -v`"
    old_ids = {f[0] for f in before["flows"]}
    assert not old_ids & {f[0] for f in after["flows"]}, "a flow survived `down -v`"
    # the DAG service registered its DAG again, as version 1 of a new flow
    assert [(name, version) for _, name, version in after["flows"]] == [(HELLO, 1)]
