"""Agent capacity: many runs on a few agents with a limit; none lost, none run twice, none over the limit."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from agents.testing import run_cli, start_agent
from tests.faults.faults import counted_env, create_runs, figures, peak_held, registered_dag, wait_finished
from prefect_emulator.testing import Emulator

pytestmark = pytest.mark.slow
RUNS = 200
AGENTS = 3
LIMIT = 3


def test_200_runs_on_3_agents_with_a_limit_run_once_each_within_the_limit(tmp_path: Path) -> None:
    with Emulator(tmp_path) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "cap-dag")
        agents = [start_agent(["start", "-l", label, "--name", f"cap-{i}", "--limit", str(LIMIT)], env,
                              tmp_path / f"cap-{i}.log") for i in range(AGENTS)]
        try:
            started = time.monotonic()
            ids = create_runs(emu, flow, RUNS)
            rows = wait_finished(emu, ids, timeout=420)
            minutes = (time.monotonic() - started) / 60
        finally:
            for agent in agents:
                agent.stop()
    result = figures(f"{RUNS} runs, {AGENTS} agents, --limit {LIMIT} (host)", ids, rows, tmp_path / "markers")
    peaks = peak_held(rows)
    print(f"{RUNS / minutes:.0f} runs/min; peak runs held per agent (API): {sorted(peaks.values())}")
    assert (result["lost"], result["duplicated"], result["success"]) == (0, 0, RUNS)
    assert len(peaks) == AGENTS, "every agent should have taken a share"
    assert max(peaks.values()) <= LIMIT, peaks


def test_bad_limits_are_refused_before_anything_starts(tmp_path: Path) -> None:
    env = counted_env("http://127.0.0.1:9", tmp_path, "limit-dag", ["limit"])
    negative = run_cli(["start", "-l", "limit", "--limit", "-1"], env)
    assert negative.returncode == 2 and "--limit" in negative.stdout, negative.stdout
    # refused before waiting for the API (nothing listens there)
    for variable, value, message in [
            ("DAGS_AGENT_MAX_RUNS", "many", "DAGS_AGENT_MAX_RUNS must be a whole number of runs"),
            ("DAGS_AGENT_MAX_RUNS", "-2", "must be >= 0, got -2"),
            ("DAGS_STRANDED_AFTER", "soon", "DAGS_STRANDED_AFTER must be a number of seconds"),
            ("DAGS_AGENT_HEALTH_TIMEOUT", "0", "DAGS_AGENT_HEALTH_TIMEOUT must be > 0")]:
        for command in (["start", "-l", "limit"], ["serve", "limit-dag"]):
            result = run_cli(command, dict(env, **{variable: value}), timeout=60)
            assert result.returncode == 1 and message in result.stdout, (command, variable, result.stdout)
            assert "waiting for the Prefect API" not in result.stdout
