"""The browser tests' world (dashboard.testing.processes.World) with their probe DAG, and flows registered
straight through prefect's client."""
from __future__ import annotations

from pathlib import Path
from typing import List

from dashboard.testing.processes import PROJECT, World

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# the DAGs every browser test may use: two of the repository's and the probe (tests/dashboard/fixtures)
DAGS = ["flow-test-hello", "etl-seattle-weather", "dashboard-probe"]


def browser_world(workdir: Path) -> World:
    """The world of the browser tests (not started)."""
    return World(workdir, DAGS, extra={"dashboard-probe": FIXTURES / "probe_dag.py"})


def register_flow(world: World, name: str, labels: List[str], schedule: object = None) -> str:
    """Registers a one-task flow `name` in "My Tests" through prefect's own client (in this process).

    Returns:
        The flow's (version's) id.
    """
    from prefect import Flow, task
    from prefect.run_configs import LocalRun
    from prefect.storage import Local

    from tests.prefect_emulator.prefect_session import prefect_session

    @task
    def nothing() -> None:
        pass

    with prefect_session(world.emulator.url, world.workdir / "registering-home"):
        with Flow(name, run_config=LocalRun(labels=labels), schedule=schedule,
                  storage=Local(directory=str(world.workdir / "flows"))) as flow:
            nothing()
        return flow.register(project_name=PROJECT, add_default_labels=False)
