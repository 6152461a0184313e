"""The tutorial's first DAG: one task that logs "Test Hello, Cloud!".

Run it as in the tutorial, from this folder: `python test-hello.py` registers the flow in the
project "My Tests" and hosts it with a LocalAgent labelled "hello" (stop it with Ctrl+C).
`python test-hello.py --local` runs it right here, with no orchestrator.
"""
from __future__ import annotations

import os

import prefect
from prefect import Flow, task
from prefect.run_configs import LocalRun

PROJECT = "My Tests"


@task
def say_hello() -> str:
    """Logs the tutorial's greeting, and which agent ran it (DAGS_AGENT_NAME, set by the runtime)."""
    logger = prefect.context.get("logger")
    logger.info("Test Hello, Cloud!")
    agent = os.environ.get("DAGS_AGENT_NAME", "no agent (local run)")
    logger.info("Run by %s", agent)
    return agent


with Flow("flow-test-hello", run_config=LocalRun(labels=["hello"])) as flow:
    say_hello()


if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
