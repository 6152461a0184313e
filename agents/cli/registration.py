"""Registering DAGs: script storage at the file's path in the repository, the DAG's labels, an idempotency key.

Registration is in two phases so that nothing is left half-done: `prepare()` checks and serializes
every DAG without touching the API; only then `register_prepared()` creates the projects and flows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from agents.config import REPO_ROOT
from agents.cli.discovery import Dag
from agents.errors import UserError

# Script storage's `directory` is only where prefect would pickle a flow (never, for a script); prefect's
# default is the registering machine's absolute home, which would make host and container hashes differ.
STORAGE_DIRECTORY = "~/.prefect/flows"


@dataclass
class Prepared:
    """A DAG ready to register.

    Attributes:
        dag: the DAG
        idempotency_key: the flow's serialized hash; an unchanged DAG registers no new version
    """

    dag: Dag
    idempotency_key: str


@dataclass
class Registered:
    """The result of registering one DAG.

    Attributes:
        name: the DAG (and flow) name
        project: the project it is in
        flow_id: the id of the flow version the server holds for it
        version: that version number
        labels: the flow's labels
        new_version: False when the server kept the previous version (same idempotency key)
    """

    name: str
    project: str
    flow_id: str
    version: Optional[int]
    labels: List[str]
    new_version: bool


def prepare(dag: Dag) -> Prepared:
    """Attaches script storage to a checked DAG's flow and computes its idempotency key; no API call.

    The storage is `Local(path=<the file>, stored_as_script=True, add_default_labels=False)`, the path
    relative to the repository root (see `storage_path`): every agent runs its flow runs from the root of
    its own checkout (the image's /app, a host clone), so a DAG registered on one runs on any other whose
    labels match, and no hostname label ties it to the registering machine. Nothing in the serialized
    flow depends on where it was registered, so the same DAG registered from the host and from a
    container has the same idempotency key and makes no new version.

    Args:
        dag: a DAG without problems

    Returns:
        The prepared registration.

    Raises:
        UserError: the DAG has problems, or its flow fails prefect's own validation or serialization.
    """
    from prefect.run_configs import UniversalRun
    from prefect.serialization.flow import FlowSchema
    from prefect.storage import Local

    if not dag.ok:
        raise UserError(f"{dag.name}: " + "; ".join(dag.problems))
    flow = dag.flow
    # Client.register refuses this, but only after the project exists: check it here, before any write.
    required = {p.name for p in flow.parameters() if p.required}
    if flow.schedule is not None and required:
        clocks = getattr(flow.schedule, "clocks", [])
        if not all(required <= set(getattr(c, "parameter_defaults", {}) or {}) for c in clocks):
            raise UserError(
                f"{dag.name}: the flow has a schedule but required parameter(s) "
                f"{', '.join(sorted(required))} have no default: give them defaults, or set them in each "
                "clock's parameter_defaults"
            )
    storage = Local(path=storage_path(dag.path), stored_as_script=True, add_default_labels=False,
                    directory=STORAGE_DIRECTORY, validate=False)
    storage.add_flow(flow)
    flow.storage = storage
    # What `Flow.register` does before registering: a run config, so any agent can deploy the run.
    # Unlike `Flow.register`, no default result from the storage: a run loads the flow from its script,
    # with the script's own result, so the storage's result would only put a machine's path in the hash.
    if flow.run_config is None:
        flow.run_config = UniversalRun()
    try:
        serialized = flow.serialize(build=False)
        FlowSchema().load(serialized)
        key = flow.serialized_hash(build=False)
    except Exception as exc:
        raise UserError(f"{dag.name}: the flow cannot be serialized for registration: {exc}") from exc
    return Prepared(dag=dag, idempotency_key=key)


def storage_path(path: Path) -> str:
    """Where script storage records a DAG file: relative to the repository root when the file is in it.

    An agent runs flow runs with the repository root as working directory (see `agents.agent.hosting`), where
    prefect's `extract_flow_from_file` opens this relative path. A file outside the repository (a
    DAGS_FOLDER elsewhere) keeps its absolute path: only agents on that machine can run it.

    Args:
        path: the DAG's .py file

    Returns:
        A POSIX path such as `dags/flow-test-hello/test-hello.py`, or the absolute path.
    """
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(resolved)


def latest_version(client: Any, name: str, project: str) -> Optional[dict]:
    """The newest non-archived version of a flow in a project, as {"id", "version"}, or None.

    Args:
        client: a prefect Client
        name: the flow name
        project: the project name
    """
    from prefect.utilities.graphql import EnumValue, with_args

    where = {"name": {"_eq": name}, "archived": {"_eq": False}, "project": {"name": {"_eq": project}}}
    query = {
        "query": {
            with_args("flow", {"where": where, "order_by": {"version": EnumValue("desc")}, "limit": 1}): {
                "id": True,
                "version": True,
            }
        }
    }
    flows = client.graphql(query).data.flow
    return {"id": flows[0].id, "version": flows[0].version} if flows else None


def flow_version(client: Any, flow_id: str) -> Optional[int]:
    """The version number of a flow id (None if the server does not say)."""
    from prefect.utilities.graphql import with_args

    query = {"query": {with_args("flow_by_pk", {"id": flow_id}): {"version": True}}}
    found = client.graphql(query).data.flow_by_pk
    return found.version if found else None


def register_prepared(client: Any, prepared: Prepared) -> Registered:
    """Registers one prepared DAG (its project must exist).

    Args:
        client: a prefect Client
        prepared: from `prepare()`

    Returns:
        What the server holds now.
    """
    dag = prepared.dag
    before = latest_version(client, dag.name, dag.project)
    flow_id = client.register(
        dag.flow,
        project_name=dag.project,
        build=False,  # the storage already holds the flow; nothing to build for a script
        no_url=True,
        idempotency_key=prepared.idempotency_key,
    )
    return Registered(
        name=dag.name,
        project=dag.project,
        flow_id=flow_id,
        version=flow_version(client, flow_id),
        labels=list(dag.labels),
        new_version=before is None or before["id"] != flow_id,
    )
