"""The rules behind recovery, ownership, capacity and health, checked without processes."""
from __future__ import annotations

import pytest

from agents.agent.health import PollHealth
from agents.agent.hosting import poll_intervals
from agents.agent.recovery import idle_sweep_interval, sweep_interval
from agents.labels import covers
from agents.errors import UserError
from agents.settings import max_runs_from_env
from agents.submission import ownership_problem


@pytest.mark.parametrize("found, before, problem", [
    ({"state": "Submitted", "agent_id": "a", "submission": "s"}, True, None),
    ({"state": "Running", "agent_id": "a", "submission": "s"}, True, None),
    ({"state": "Running", "agent_id": "a", "submission": "s"}, False, None),
    ({"state": "Scheduled", "agent_id": "a", "submission": "s"}, True, "re-queued"),
    ({"state": "Submitted", "agent_id": "b", "submission": "t"}, True, "submitted again"),
    ({"state": "Running", "agent_id": "b", "submission": "t"}, False, "submitted again"),
    ({"state": "Submitted", "agent_id": "b", "submission": "s"}, True, "held by agent b"),
])
def test_ownership_rules(found: dict, before: bool, problem: str) -> None:
    answer = ownership_problem(found, "a", "s", before_start=before)
    assert (answer is None) if problem is None else (problem in answer), answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_health_fails_after_the_timeout_without_a_successful_poll_and_recovers() -> None:
    clock = Clock()
    health = PollHealth(timeout=60, clock=clock)
    assert health.status()[0], "healthy while starting"
    clock.now += 61
    assert not health.status()[0], "never polled for longer than the timeout"
    health.succeeded()
    assert health.status()[0] and health.connected_for() == 0
    clock.now += 30
    health.failed()
    assert health.status()[0], "one failed poll 30 s after a success is within the timeout"
    assert health.connected_for() == 0 and health.status()[1]["failed_polls_in_a_row"] == 1
    clock.now += 31
    healthy, body = health.status()
    assert not healthy and body["seconds_since_successful_poll"] == 61
    health.succeeded()
    clock.now += 5
    assert health.status()[0] and health.connected_for() == 5


@pytest.mark.parametrize("agent, run, expected", [
    (["etl"], ["etl"], True), (["etl", "x"], ["etl"], True), (["etl"], ["etl", "x"], False),
    ([], [], True), (["etl"], [], False), ([], ["etl"], False),
])
def test_an_agent_recovers_only_runs_its_labels_cover(agent, run, expected) -> None:
    assert covers(agent, run) is expected


def test_sweep_interval_is_a_third_of_the_bound_within_1_and_10() -> None:
    assert [sweep_interval(s) for s in (1, 12, 30, 300)] == [1, 4, 10, 10]


def test_an_idle_sweep_waits_the_bound_itself_at_most_30_s_never_less_than_a_busy_one() -> None:
    assert [idle_sweep_interval(s) for s in (1, 3, 12, 30, 300)] == [1, 3, 12, 30, 30]


def test_poll_intervals_cap_prefects_backoff_or_extend_it() -> None:
    assert list(poll_intervals(1.1).values()) == [0.25, 0.5, 1.0, 1.1, 1.1, 1.1, 1.1]
    assert list(poll_intervals(0.1).values()) == [0.1] * 7
    assert list(poll_intervals(10).values()) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert list(poll_intervals(60).values()) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 60]


def test_run_limit_from_option_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGS_AGENT_MAX_RUNS", raising=False)
    assert max_runs_from_env() == 4
    assert max_runs_from_env(0) is None and max_runs_from_env(7) == 7
    monkeypatch.setenv("DAGS_AGENT_MAX_RUNS", "2")
    assert max_runs_from_env() == 2 and max_runs_from_env(3) == 3
    monkeypatch.setenv("DAGS_AGENT_MAX_RUNS", "0")
    assert max_runs_from_env() is None
    for bad in ("many", "-1", "2.5"):
        monkeypatch.setenv("DAGS_AGENT_MAX_RUNS", bad)
        with pytest.raises(UserError, match="DAGS_AGENT_MAX_RUNS"):
            max_runs_from_env()
