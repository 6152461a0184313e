"""What each command does, shared by the click CLI (`agents.cli`) and a DAG script's main block.

Each function takes the loaded settings and an `echo` callable, prints its report and returns an exit
code; errors the user can fix raise `agents.errors.UserError`, which the front ends print.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from agents.agent import hosting, waking
from agents.cli import connection, discovery, registration, triggering
from agents.cli.discovery import Dag
from agents.errors import UserError
from agents.labels import label_problem
from agents.cli.params import check_params
from agents.settings import AgentSettings, Settings, require_credentials

Echo = Callable[[str], None]


def connect(settings: Settings, echo: Echo, wait_timeout: Optional[float] = None) -> Any:
    """Checks credentials (no network), waits for the API, makes sure the server has a tenant.

    Args:
        settings: the loaded settings
        echo: progress output
        wait_timeout: seconds to wait for the API; default `settings.api_wait_timeout` (DAGS_API_WAIT_TIMEOUT)

    Returns:
        A prefect Client.
    """
    from prefect import Client

    require_credentials(settings)
    timeout = settings.api_wait_timeout if wait_timeout is None else wait_timeout
    connection.wait_for_api(settings.api_url, timeout, echo=echo)
    from prefect.exceptions import AuthorizationError

    client = Client()
    try:
        if settings.backend == "cloud":
            client.tenant_id  # resolves the key's tenant: the first call that needs a valid key
        created = connection.ensure_tenant(client, settings.backend)
    except AuthorizationError:
        raise UserError(
            f"the Prefect API at {settings.api_url} refused the API key: check PREFECT__CLOUD__API_KEY "
            f"(or PREFECT_AUTH_KEY) in {settings.local_env} or the environment"
        ) from None
    if created:
        echo(f"created tenant 'default' ({created})")
    return client


def report_problems(dags: List[Dag], echo: Echo) -> int:
    """Prints each DAG's problems as `<file>: <reason>`; returns how many DAGs have problems."""
    bad = [d for d in dags if not d.ok]
    for dag in bad:
        for problem in dag.problems:
            echo(f"{dag.where}: {problem}")
    return len(bad)


def list_dags(settings: Settings) -> List[Dict[str, str]]:
    """Rows of the DAG table: name, file, project, labels, schedule (problems shown as the schedule)."""
    rows = []
    for dag in discovery.discover(settings.dags_folder, settings.default_project, settings.load_timeout,
                                  load_flows=False):
        file = str(dag.path.relative_to(settings.dags_folder)) if dag.path else "-"
        rows.append({
            "name": dag.name,
            "file": file,
            "project": dag.project,
            "labels": ",".join(dag.labels) or "-",
            "schedule": dag.schedule if dag.ok else "BROKEN: " + "; ".join(dag.problems),
        })
    return rows


def check(settings: Settings, echo: Echo) -> int:
    """Loads every DAG and reports each problem; exit 1 if any."""
    dags = discovery.discover(settings.dags_folder, settings.default_project, settings.load_timeout,
                              load_flows=False)
    if not dags:
        echo(f"no DAG folders in {settings.dags_folder}")
        return 1
    bad = report_problems(dags, echo)
    echo(f"{len(dags) - bad} of {len(dags)} DAGs OK")
    return 1 if bad else 0


def register(settings: Settings, names: List[str], echo: Echo,
             dags: Optional[List[Dag]] = None) -> int:
    """Registers DAGs (all by default): every check first, then projects and flows.

    A broken DAG is reported and the others are still registered.

    Args:
        settings: the loaded settings
        names: DAG names; empty for all
        echo: output
        dags: already loaded DAGs (a script passes its own); default: discover the DAGs folder

    Returns:
        0 when all registered, 1 if any failed.
    """
    if dags is None:
        dags = discovery.select(discovery.discover(settings.dags_folder, settings.default_project,
                                                   settings.load_timeout), names)
    if not dags:
        raise UserError(f"no DAG folders in {settings.dags_folder}: add dags/<name>/<script>.py "
                        "or set DAGS_FOLDER")
    failed = report_problems(dags, echo)
    prepared = []
    # Phase 1, no writes: serialize every DAG so that a bad one stops before the API is touched.
    for dag in (d for d in dags if d.ok):
        try:
            prepared.append(registration.prepare(dag))
        except UserError as exc:
            echo(f"{dag.where}: {exc}")
            failed += 1
    if prepared:
        client = connect(settings, echo)
        # Phase 2: projects, then flows.
        for project in connection.ensure_projects(client, [p.dag.project for p in prepared]):
            echo(f"created project {project!r}")
        for item in prepared:
            try:
                done = registration.register_prepared(client, item)
            except Exception as exc:  # one DAG the server refuses must not stop the others
                echo(f"{item.dag.where}: registration failed: {exc}")
                failed += 1
                continue
            change = "new version" if done.new_version else "unchanged"
            echo(f"registered {done.name} version {done.version} ({change}) in {done.project!r} "
                 f"labels {done.labels} flow id {done.flow_id}")
    return 1 if failed else 0


def host(labels: List[str], name: str, agent_address: Optional[str], echo: Echo, agent: AgentSettings) -> int:
    """Runs a LocalAgent with these labels and settings until interrupted (SIGINT/SIGTERM)."""
    agent = hosting.build_agent(labels=labels, name=name, settings=agent, agent_address=agent_address)
    echo(f"agent {name!r} with labels {sorted(labels)} polling for runs")
    agent.start()
    return 0


def serve(settings: Settings, dag: Dag, echo: Echo, name: Optional[str] = None,
          agent_address: Optional[str] = None, limit: Optional[int] = None) -> int:
    """Registers one DAG, then hosts it with an agent carrying the DAG's labels; `limit`: `--limit`."""
    agent = settings.agent(limit)  # bad agent settings stop it before anything is done
    code = register(settings, [dag.name], echo, dags=[dag])
    if code:
        return code
    return host(dag.labels, name or hosting.agent_name(dag.name), agent_address, echo, agent)


def start(settings: Settings, labels: List[str], name: Optional[str], agent_address: Optional[str],
          echo: Echo, limit: Optional[int] = None) -> int:
    """Runs a shared agent with these labels: it runs every flow run whose labels it covers.

    Args:
        settings: the loaded settings
        labels: the agent's labels (checked: a bad one is a usage error of --label)
        name: the agent's name; default `<labels joined by +>@<hostname>`
        agent_address: where to serve the agent API; None for PREFECT__CLOUD__AGENT__AGENT_ADDRESS, else loopback
        echo: output
        limit: most runs held at once; None for DAGS_AGENT_MAX_RUNS or the default

    Returns:
        0 once interrupted.
    """
    for label in labels:
        problem = label_problem(label)
        if problem:
            raise UserError(problem, option="--label")
    agent = settings.agent(limit)  # bad agent settings stop it before anything is done
    # Wait for the API (and the server's tenant) first: in compose the agent may start before it.
    connect(settings, echo)
    return host(labels, name or hosting.agent_name(hosting.labels_name(labels)), agent_address, echo, agent)


def find_dag(settings: Settings, name: str) -> Dag:
    """Loads one DAG by name (only its folder is executed); an unknown or broken DAG is a UserError."""
    folders = {f.name: f for f in discovery.dag_folders(settings.dags_folder)}
    if name not in folders:
        raise discovery.unknown_dag([name], folders)
    dag = discovery.load_dag(folders[name], settings.default_project, settings.load_timeout)
    if not dag.ok:
        raise UserError("; ".join(f"{dag.where}: {p}" for p in dag.problems))
    return dag


def trigger(settings: Settings, name: str, params: Dict[str, Any], wait: bool,
            timeout: Optional[float], echo: Echo) -> int:
    """Creates a run of the DAG's latest version and pokes the agents that may take it (agents.agent.waking); with
    `wait`, watches it (exit 0/1/2), first warning once when no agent that can run it is polling (see
    `triggering.no_agent_warning`)."""
    dag = find_dag(settings, name)
    check_params(dag.flow, params)
    addresses = settings.poke_addresses()  # a malformed DAGS_POKE_ADDRESSES stops the trigger before it creates
    connect(settings, echo)
    run_id = triggering.create_run(dag.name, dag.project, params)
    waking.wake_agents(dag.labels, addresses)  # best effort: their next poll finds the run anyway
    echo(f"created flow run {run_id} of {dag.name} in {dag.project!r}")
    if not wait:
        return 0
    warning = triggering.no_agent_warning(run_id, dag.name)
    if warning:
        echo(warning)
    return triggering.watch(run_id, timeout, echo, poll=settings.watch_poll_interval)


def init(settings: Settings, wait_timeout: float, echo: Echo) -> int:
    """Waits for the API, creates the tenant (server) if none, and every DAG's project. Idempotent."""
    client = connect(settings, echo, wait_timeout=wait_timeout)
    dags = discovery.discover(settings.dags_folder, settings.default_project, settings.load_timeout,
                              load_flows=False)
    projects = sorted({d.project for d in dags if d.project} | {settings.default_project})
    created = connection.ensure_projects(client, projects)
    for project in projects:
        echo(f"project {project!r}: {'created' if project in created else 'exists'}")
    bad = report_problems(dags, echo)
    if bad:
        echo(f"{bad} DAG(s) have problems (their projects may be missing): run `python -m agents check`")
    return 0
