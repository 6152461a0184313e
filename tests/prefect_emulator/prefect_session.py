"""The real prefect package, in this test process, pointed at an emulator.

Tests that need no agent drive prefect's own `Client` (and `Flow.register`) in-process: it is the same code the
CLI and agents run, minus the cost of starting a Python interpreter per call. prefect reads its settings from a
global config, so a session swaps that config for the duration of a `with` block (prefect's own
`set_temporary_config`), with a private home folder so that nothing touches ~/.prefect.
"""
from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Iterator, List, Optional

import prefect
from prefect import Client
from prefect.utilities.configuration import set_temporary_config
from prefect.utilities.storage import extract_flow_from_file

FLOW_SCRIPT = '''\
"""Flow {name!r}, written by the emulator tests; loaded through prefect's script storage."""
from __future__ import annotations

import datetime
import os
import time
import uuid

import prefect
from prefect import Flow, Parameter, task
from prefect.run_configs import LocalRun
from prefect.storage import Local

MARKER_DIR = {marker_dir!r}
SLEEP_SECONDS = {sleep!r}


@task({task_options})
def greet(greeting: str) -> str:
    prefect.context.get("logger").info("greeting=%s", greeting)
    if MARKER_DIR:
        # one file per execution (pid + random suffix): a run executed twice leaves two markers
        run_id = prefect.context.get("flow_run_id")
        name = "{{}}.{{}}.{{}}".format(run_id, os.getpid(), uuid.uuid4().hex)
        with open(os.path.join(MARKER_DIR, name), "w") as marker:
            marker.write(greeting)
    if prefect.context.get("task_run_count", 1) == 1:
        time.sleep(SLEEP_SECONDS)  # a retry (after the zombie killer) does not sleep again
    return greeting


@task
def shout(text: str) -> str:
    return text.upper()


with Flow(
    {name!r},
    storage=Local(path={path!r}, stored_as_script=True, add_default_labels=False),
    run_config=LocalRun(labels={labels!r}),
) as flow:
    shout(greet({parameter}))

if __name__ == "__main__":
    flow.run()
'''


@contextlib.contextmanager
def prefect_session(api_url: str, home: Path, api_key: Optional[str] = None) -> Iterator[Client]:
    """Points this process's prefect at `api_url` and yields a `Client` for it.

    Args:
        api_url: the emulator's GraphQL endpoint
        home: a private PREFECT__HOME_DIR (auth.toml lands there, never in ~/.prefect)
        api_key: when given, the cloud backend is used with this key (as `prefect auth login` would)

    Returns:
        A context manager yielding a `prefect.Client`; the previous prefect config is restored on exit.
    """
    home.mkdir(parents=True, exist_ok=True)
    settings = {
        "backend": "cloud" if api_key else "server",
        "cloud.api": api_url,
        "server.endpoint": api_url,
        "home_dir": str(home),
        "cloud.api_key": api_key or "",
        "cloud.tenant_id": "",
        # a lost emulator should fail a test in seconds, not after prefect's 15 s x retries
        "cloud.request_timeout": 10,
    }
    with set_temporary_config(settings):
        yield Client(api_server=api_url, api_key=api_key)


def create_tenant_and_project(client: Client, project: str, tenant: Optional[str] = None) -> str:
    """Creates a tenant (Server backend) and a project in it, as `prefect server create-tenant` and
    `prefect create project` do.

    Args:
        client: a client from `prefect_session`
        project: the project name
        tenant: the tenant name; a random one when omitted

    Returns:
        The tenant id.
    """
    tenant_id = client.create_tenant(name=tenant or "tenant-" + uuid.uuid4().hex[:8])
    client.tenant_id = tenant_id
    client.create_project(project)
    return tenant_id


def write_flow_script(path: Path, name: str, labels: List[str], marker_dir: Optional[Path] = None,
                      sleep: float = 0.0, required: bool = False, max_retries: int = 0,
                      retry_delay: float = 0.0) -> Path:
    """Writes a two-task flow script (script storage pointing at itself) to `path`.

    Args:
        path: where the .py file goes
        name: the flow's name
        labels: the LocalRun labels (the flow's run_config labels)
        marker_dir: when set, each execution of the first task drops a file named
            `<flow_run_id>.<pid>.<random>` there
        sleep: seconds the first task sleeps on its first attempt (zombie tests kill the run meanwhile)
        required: True to make the `greeting` parameter required instead of defaulting to "hello"
        max_retries: the first task's max_retries (the zombie killer retries a task that has some left)
        retry_delay: the first task's retry_delay in seconds (with max_retries)

    Returns:
        The path written.
    """
    text = FLOW_SCRIPT.format(name=name, path=str(path), labels=list(labels),
                              marker_dir=str(marker_dir) if marker_dir else "", sleep=float(sleep),
                              parameter='Parameter("greeting")' if required else
                              'Parameter("greeting", default="hello")',
                              task_options=(f"max_retries={max_retries}, retry_delay=datetime.timedelta("
                                            f"seconds={float(retry_delay)!r})") if max_retries else "")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: an agent never loads half a script
    return path


def register_flow_script(path: Path, project: str, idempotency_key: Optional[str] = None,
                         no_url: bool = True) -> str:
    """Registers the flow in `path` with `Flow.register` (what the DAG containers do).

    Args:
        path: a script written by `write_flow_script`
        project: the project to register into
        idempotency_key: passed to Flow.register
        no_url: False to let Flow.register look the flow group up and print the UI link, as it does by default

    Returns:
        The flow id the API answered.
    """
    flow = extract_flow_from_file(file_path=str(path))
    return flow.register(project_name=project, idempotency_key=idempotency_key, no_url=no_url)


def flow_run_rows(client: Client, run_ids: List[str]) -> dict:
    """Returns {run id: {"state": ..., "version": ..., "labels": [...]}} for `run_ids`, read through GraphQL."""
    query = """query($ids: [uuid!]) {
        flow_run(where: {id: {_in: $ids}}) { id state version labels }
    }"""
    result = client.graphql(query, variables={"ids": list(run_ids)})
    return {row.id: {"state": row.state, "version": row.version, "labels": list(row.labels or [])}
            for row in result.data.flow_run}


def set_flow_group_labels(client: Client, flow_id: str, labels: Optional[List[str]]) -> None:
    """Sets (or with None, clears) the labels of `flow_id`'s flow group, as the Prefect UI does."""
    group = client.graphql({"query": {"flow_by_pk(id: \"%s\")" % flow_id: {"flow_group_id"}}})
    client.graphql(
        "mutation($input: set_flow_group_labels_input!) { set_flow_group_labels(input: $input) { success } }",
        variables={"input": {"flow_group_id": group.data.flow_by_pk.flow_group_id, "labels": labels}},
    )
