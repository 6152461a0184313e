"""End to end: the whole compose stack with the emulator as the API, one stack for this module.

Order matters and is the file's order: the stack is brought up once (`docker compose up -d --wait`); the
dashboard walks the tutorial in a browser at its published 127.0.0.1 port; the scaling tests reconcile it to
more replicas; the restart test restarts the DAG services; the last test takes the stack down.
Every run records which agent ran it (DAGS_AGENT_NAME, set by the runtime in the flow-run process: the
DAGs write it to their outputs or log it), and agent names end in `@<container hostname>`, which maps
each run to the compose service and replica that ran it.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
import requests

from agents.cli import discovery
from agents.labels import covers
from prefect_emulator.testing import REPO_ROOT
from tests.dashboard.test_tutorial import walk_the_tutorial
from tests.stack.stack import Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DAG_NAMES = sorted(p.name for p in (REPO_ROOT / "dags").iterdir() if p.is_dir() and any(p.glob("*.py")))
ETL = next((n for n in DAG_NAMES if n.startswith("etl-")), None)
DISTRIBUTED = next((n for n in DAG_NAMES if n.startswith("distributed-")), None)
RUN_BY = re.compile(r"Run by (\S+@\S+)")


@pytest.fixture(scope="module")
def dags() -> Dict[str, discovery.Dag]:
    """The DAGs as the runtime sees them on the host (the expected names, labels and projects)."""
    found = {d.name: d for d in discovery.discover(REPO_ROOT / "dags", "My Tests")}
    broken = {n: d.problems for n, d in found.items() if not d.ok}
    assert not broken, f"broken DAGs: {broken}"
    return found


@pytest.fixture(scope="module")
def service_labels(stack: Stack, dags: Dict[str, discovery.Dag]) -> Dict[str, Set[str]]:
    """The labels of the agent each prefect service runs: a dag- service its DAG's, a shared agent its
    --label values (read from the stack's own compose configuration)."""
    config = json.loads(stack.run("config", "--format", "json").stdout)
    labels: Dict[str, Set[str]] = {}
    for name, service in config["services"].items():
        command = service.get("command") or []
        if name.startswith("dag-"):
            labels[name] = set(dags[name[len("dag-"):]].labels)
        elif name.startswith("agent-"):
            labels[name] = {command[i + 1] for i, a in enumerate(command) if a in ("--label", "-l")}
    return labels


def has_output_dir(dag: discovery.Dag) -> bool:
    return any(p.name == "output_dir" for p in dag.flow.parameters())


def recorded_agent(run: dict, output_dir: Optional[Path]) -> Optional[str]:
    """The agent name a run recorded (DAGS_AGENT_NAME): from its JSON output, else from its logs."""
    if output_dir is not None:
        for candidate in (output_dir / "runs" / f"{run['id']}.json", output_dir / "report.json",
                          output_dir / "result.json"):
            if candidate.is_file():
                data = json.loads(candidate.read_text())
                if data.get("flow_run_id") == run["id"] and data.get("agent_name"):
                    return data["agent_name"]
    for log in run["logs"]:
        match = RUN_BY.search(log["message"])
        if match:
            return match.group(1)
    return None


def service_of_run(stack: Stack, run: dict, output_dir: Optional[Path],
                   hostnames: Dict[str, str]) -> str:
    """The compose service whose container ran `run`, from the agent name it recorded (and, when the API
    recorded the submitting agent, checks that both agree)."""
    agent = recorded_agent(run, output_dir)
    assert agent, f"run {run['id']} of {run['flow']['name']} recorded no agent name (DAGS_AGENT_NAME)"
    if run.get("agent"):
        assert run["agent"]["name"] == agent, f"the API says {run['agent']['name']}, the run says {agent}"
    hostname = agent.rsplit("@", 1)[1]
    assert hostname in hostnames, f"agent {agent} is not in a container of this stack: {hostnames}"
    return hostnames[hostname]


def count_states(run: dict, state: str) -> int:
    return sum(1 for s in run["states"] if s["state"] == state)


def test_every_dag_is_registered_with_its_labels_project_and_container_path(stack, dags):
    flows = stack.flows()
    for name, dag in dags.items():
        versions = [f for f in flows if f["name"] == name and not f["archived"]]
        assert versions, f"{name} is not registered; registered: {sorted({f['name'] for f in flows})}"
        assert len(versions) == 1, f"{name} has {len(versions)} versions after one start"
        flow = versions[0]
        assert sorted(flow["run_config"]["labels"]) == dag.labels
        assert flow["project"]["name"] == dag.project
    storage = stack.graphql("{ flow { name storage } }")["flow"]
    for entry in storage:
        dag = dags[entry["name"]]
        # script storage at the file's path relative to the repository root (/app in the image): any agent
        # of the image, or of a host checkout, loads it from its own root
        assert entry["storage"]["path"] == f"dags/{dag.name}/{dag.path.name}"
        assert entry["storage"]["stored_as_script"] is True


@pytest.mark.browser
def test_the_stacks_dashboard_walks_the_tutorial(browser, stack: Stack) -> None:
    # "My Tests", flow-test-hello, Quick Run, and the run page reaching Success with "Test Hello, Cloud!"
    url = f"http://127.0.0.1:{stack.env['UI_HOST_PORT']}"
    assert requests.get(url + "/health", timeout=10).json() == {"api": "ok"}
    walk_the_tutorial(browser, url)
    # the dashboard runs as the image's user, not root
    assert stack.exec("dashboard", "id", "-u").stdout.strip() == "5678"


@pytest.mark.parametrize("name", DAG_NAMES)
def test_each_dag_triggered_in_the_stack_ends_in_success(stack, dags, service_labels, name):
    params: List[str] = []
    output_dir = None
    if has_output_dir(dags[name]):
        output_dir = f"{stack.output_dir}/trigger/{name}"
        params = ["--param", f"output_dir={output_dir}"]
    # DEBUG shows which agents `trigger` woke (agents.agent.waking)
    proc = stack.run("exec", "-T", "-e", "PREFECT__LOGGING__LEVEL=DEBUG", "agent-etl", "python", "-m", "agents",
                     "trigger", name, *params, "--wait", "--timeout", "300", timeout=400, check=False)
    assert proc.returncode == 0, f"trigger {name} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    # every agent container, one replica each here, got the poke through the network alias `agents`, and
    # those whose labels cover the run's woke (the others answer {"woken": false}: agents.agent.waking)
    woken = re.search(r"poked \d+ agent\(s\): (\[.*\])", proc.stdout + proc.stderr)
    assert woken, proc.stdout + proc.stderr
    remote = [a for a in json.loads(woken.group(1).replace("'", '"')) if not a.startswith("http://127.0.0.1:")]
    covering = sorted(s for s, labels in service_labels.items() if covers(labels, dags[name].labels))
    assert covering and len(remote) == len(covering), (remote, covering)
    run_id = re.search(r"created flow run (\S+)", proc.stdout).group(1)
    assert f"flow run {run_id} finished: Success" in proc.stdout
    if output_dir is not None:
        # the run wrote into data/ inside its container: the files are on the host, from this very run
        folder = stack.host_path(output_dir)
        records = [json.loads(p.read_text()) for p in folder.rglob("*.json")]
        assert any(r.get("flow_run_id") == run_id for r in records), f"no output of run {run_id} in {folder}"


@pytest.mark.skipif(ETL is None, reason="no ETL DAG in dags/")
def test_etl_outputs_appear_under_data_on_the_host(stack, dags):
    output_dir = f"{stack.output_dir}/etl-host"
    run_id = stack.create_run(stack.latest_flow_id(ETL), {"output_dir": output_dir})
    [run] = stack.wait_for_runs([run_id], timeout=300)
    assert run["state"] == "Success", run
    folder = stack.host_path(output_dir)
    report = json.loads((folder / "report.json").read_text())
    assert report["flow_run_id"] == run_id
    assert report["rows"]["accepted"] > 0
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((folder / "monthly.csv").read_text().splitlines()) > 1
    owner = stack.env.get("DAGS_UID", "5678")
    assert str(folder.stat().st_uid) == owner, "outputs are written by the services' uid"


def test_runs_go_only_to_agents_whose_labels_cover_them(stack, dags, service_labels):
    outputs: Dict[str, Optional[Path]] = {}
    for name, dag in dags.items():
        flow_id = stack.latest_flow_id(name)
        for i in range(2):
            params = None
            if has_output_dir(dag):
                params = {"output_dir": f"{stack.output_dir}/routing/{name}-{i}"}
            run_id = stack.create_run(flow_id, params)
            outputs[run_id] = stack.host_path(params["output_dir"]) if params else None
    runs = stack.wait_for_runs(list(outputs), timeout=420)
    hostnames = stack.service_of_hostname()
    for run in runs:
        assert run["state"] == "Success", f"{run['flow']['name']} run {run['id']}: {run['state']}"
        service = service_of_run(stack, run, outputs[run["id"]], hostnames)
        assert service in service_labels, f"run {run['id']} ran in {service}, which hosts no agent"
        assert set(run["labels"]) <= service_labels[service], (
            f"run {run['id']} labelled {run['labels']} ran on {service} with labels {service_labels[service]}")


def test_with_dag_services_stopped_shared_agents_run_only_runs_their_labels_cover(stack, dags, service_labels):
    shared = {name: labels for name, labels in service_labels.items() if name.startswith("agent-")}
    dag_services = [f"dag-{name}" for name in dags]
    stack.run("stop", "--timeout", "5", *dag_services, timeout=300)
    try:
        covered: Dict[str, str] = {}  # run id -> the one shared agent service whose labels cover it
        uncovered: List[str] = []
        outputs: Dict[str, Optional[Path]] = {}
        for name, dag in dags.items():
            params = {"output_dir": f"{stack.output_dir}/shared/{name}"} if has_output_dir(dag) else None
            run_id = stack.create_run(stack.latest_flow_id(name), params)
            outputs[run_id] = stack.host_path(params["output_dir"]) if params else None
            services = [s for s, labels in shared.items() if set(dag.labels) <= labels]
            if services:
                assert len(services) == 1, f"{name} is covered by several shared agents: {services}"
                covered[run_id] = services[0]
            else:
                uncovered.append(run_id)
        assert covered, "no DAG has labels a shared agent covers"
        runs = stack.wait_for_runs(list(covered), timeout=420)
        hostnames = stack.service_of_hostname()
        for run in runs:
            assert run["state"] == "Success", f"{run['flow']['name']} run {run['id']}: {run['state']}"
            assert service_of_run(stack, run, outputs[run["id"]], hostnames) == covered[run["id"]]
        # the shared agents polled many times meanwhile (every second at most): what they do not cover stays
        time.sleep(3)
        for run in stack.runs(uncovered):
            assert run["state"] == "Scheduled", (
                f"{run['flow']['name']} run labelled {run['labels']} left Scheduled with only agents "
                f"{shared} running: {run['state']}")
    finally:
        stack.up("--no-build")
    # its own DAG service is back: the waiting run is picked up now
    for run in stack.wait_for_runs(uncovered, timeout=300):
        assert run["state"] == "Success", run


@pytest.mark.skipif(DISTRIBUTED is None, reason="no distributed DAG in dags/")
def test_distributed_partitions_run_on_at_least_two_dask_workers(stack):
    stack.up("--no-build", scales={"dask-worker": 2})
    workers = {c["hostname"] for c in stack.containers() if c["service"] == "dask-worker"}
    assert len(workers) == 2
    output_dir = f"{stack.output_dir}/distributed"
    run_id = stack.create_run(stack.latest_flow_id(DISTRIBUTED), {"output_dir": output_dir})
    [run] = stack.wait_for_runs([run_id], timeout=420)
    assert run["state"] == "Success", run
    result = json.loads((stack.host_path(output_dir) / "result.json").read_text())
    assert result["flow_run_id"] == run_id
    assert result["executor"]["address"] == "tcp://dask-scheduler:8786"
    ran_on = {p["hostname"] for p in result["partitions"]}
    assert ran_on <= workers, f"partitions ran outside the dask-worker containers: {ran_on - workers}"
    assert len(ran_on) >= 2, f"all partitions ran on one worker: {ran_on}"


@pytest.mark.skipif(ETL is None, reason="no ETL DAG in dags/")
def test_scaled_agent_service_shares_30_runs_each_run_executed_once(stack, dags, service_labels):
    stack.up("--no-build", scales={"agent-etl": 3})
    replicas = {c["hostname"] for c in stack.containers() if c["service"] == "agent-etl"}
    assert len(replicas) == 3
    flow_id = stack.latest_flow_id(ETL)
    outputs: Dict[str, Path] = {}
    for i in range(30):
        output_dir = f"{stack.output_dir}/scale/{i}"
        outputs[stack.create_run(flow_id, {"output_dir": output_dir})] = stack.host_path(output_dir)
        # runs arrive over a few seconds, as they would from schedules and users, not in one poll
        time.sleep(0.2)
    runs = stack.wait_for_runs(list(outputs), timeout=780)
    hostnames = stack.service_of_hostname()
    used: Dict[str, int] = {}
    for run in runs:
        assert run["state"] == "Success", f"run {run['id']}: {run['state']}"
        # executed exactly once: one submission, one Running state, one flow runner start
        assert count_states(run, "Submitted") == 1, run["states"]
        assert count_states(run, "Running") == 1, run["states"]
        starts = [l for l in run["logs"] if l["message"].startswith("Beginning Flow run")]
        assert len(starts) == 1, f"run {run['id']} started {len(starts)} times"
        service = service_of_run(stack, run, outputs[run["id"]], hostnames)
        assert set(run["labels"]) <= service_labels[service]
        agent = recorded_agent(run, outputs[run["id"]])
        if service == "agent-etl":
            used[agent] = used.get(agent, 0) + 1
    print(f"runs per agent-etl replica: {used}; runs whose submitting agent the API recorded "
          f"(flow_run.agent_id): {sum(1 for r in runs if r.get('agent'))} of {len(runs)}")
    assert len(used) >= 2, f"the 30 runs ran on fewer than 2 agent-etl replicas: {used}"


def test_restarting_the_dag_services_reregisters_without_new_versions(stack, dags):
    before = sorted((f["name"], f["version"], f["id"]) for f in stack.flows())
    since = str(int(time.time()))
    services = [f"dag-{name}" for name in dags]
    stack.run("restart", "--timeout", "5", *services, timeout=300)
    stack.up("--no-build")  # waits until the restarted agents are healthy again
    after = sorted((f["name"], f["version"], f["id"]) for f in stack.flows())
    assert after == before, "a restart made new flow versions"
    for name in dags:
        logs = stack.logs(f"dag-{name}", since=since)
        assert re.search(rf"registered {re.escape(name)} version \d+ \(unchanged\)", logs), (
            f"dag-{name} did not register again after its restart:\n{logs[-2000:]}")


def test_down_leaves_no_container_of_the_project(stack):
    stack.run("down", "--timeout", "5", timeout=300)
    assert stack.containers(all_states=True) == []
