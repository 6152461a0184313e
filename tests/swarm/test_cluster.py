"""The emulator stack on a three-node Docker Swarm cluster made on this machine (tests/swarm/cluster.py).

node1 carries `api` and `dask` (the API, the Dask scheduler, a worker), node2 `etl` and `hello`, node3
`dask`; three managers (one may fail). scripts/swarm.sh makes the swarm, labels the nodes, builds and
loads the image and deploys; the tests trigger the three DAGs from a container on the stack's overlay
network and from the host through node1's published port, and assert where each ran: `docker service ps`
for the tasks, the agent names that runs record (`<what>@<node>`: agents take their node's hostname), and
for the distributed DAG the hosts its partitions ran on (the workers, named after their nodes too). Then
the faults: a node paused mid-run and resumed, the API's node restarted; each prints its figures (runs
created, Success, lost, run twice, seconds to recover) and must lose none and run none twice.

One cluster for the module (the costly part: about 30 s to start and load the image); everything it made
is removed at the end, also after a failure. The stack is named `swarm` (tests/swarm/cluster.py), so its
services are swarm_<service> whatever the checkout's folder is called. Runs are triggered as a user would:
`docker exec` into an agent-etl task (it has the stack's settings and is on the overlay network) and
`python -m agents trigger` on the host against node1's port; the fault scenarios make their runs straight
through the API, all at once, so that the agents hold a queue of them when the fault lands.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import pytest
import requests

from tests.faults.faults import wait_until
from prefect_emulator.testing import REPO_ROOT, prefect_env
from tests.stack.stack import FINAL_STATES
from tests.swarm.cluster import Cluster

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.slow]

NODE1, NODE2, NODE3 = "swarm-node1", "swarm-node2", "swarm-node3"
HELLO, ETL, PRIMES = "flow-test-hello", "etl-seattle-weather", "distributed-primes"
# agents: <what they host>@<the node they run on>
EXPECTED_AGENTS = {f"{HELLO}@{NODE2}", f"{ETL}@{NODE2}", f"etl@{NODE2}", f"{PRIMES}@{NODE1}",
                   f"{PRIMES}@{NODE3}", f"dask@{NODE1}", f"dask@{NODE3}"}
# what a run's log says when its flow-run process died and an agent finished it (agents.agent.deadruns,
# recovery): it stopped itself, its lease expired; or it was on a node that went away with it
DEAD_RUN_CAUSES = ("its lease expired: it could not reach the API", "Its flow-run process is presumed dead")
PARTITION_HOST = re.compile(r"partition \d+ ran on \S+ \(host (\S+)\)")


class SwarmApi:
    """The emulator as the host reaches it: node1's published port."""

    def __init__(self, host: str) -> None:
        self.url = f"http://{host}:4200"

    def graphql(self, query: str, variables: dict = None) -> dict:
        body = requests.post(self.url + "/graphql", json={"query": query, "variables": variables or {}},
                             timeout=30).json()
        assert not body.get("errors"), body
        return body["data"]

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=5).ok
        except requests.RequestException:
            return False

    def agent_names(self) -> set:
        return {a["name"] for a in self.graphql("{ agent { name } }")["agent"]}

    def flow_names(self) -> set:
        return {f["name"] for f in self.graphql("{ flow { name } }")["flow"]}

    def create_run(self, flow_name: str) -> str:
        """A run of the newest version of `flow_name`, made straight through the API (as the UI makes one)."""
        flow = self.graphql('query($n: String) { flow(where: {name: {_eq: $n}}, order_by: {version: desc}, '
                            'limit: 1) { id } }', {"n": flow_name})["flow"][0]
        return self.graphql("mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }",
                            {"input": {"flow_id": flow["id"]}})["create_flow_run"]["id"]

    def runs(self, ids: Sequence[str]) -> List[dict]:
        return self.graphql("query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) { id state "
                            "flow { name } agent { name } logs { message } } }", {"ids": list(ids)})["flow_run"]

    def wait_final(self, ids: Sequence[str], timeout: float) -> List[dict]:
        """The runs once all are final, or as they are when `timeout` passes (then some count as lost)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.runs(ids)
            if len(rows) == len(ids) and all(r["state"] in FINAL_STATES for r in rows):
                return rows
            if time.monotonic() > deadline:
                return rows
            time.sleep(0.5)


def node_of(run: dict) -> str:
    """The node whose agent ran the run (agents are named <what>@<node>)."""
    return (run.get("agent") or {}).get("name", "?@?").rsplit("@", 1)[1]


def partition_hosts(run: dict) -> List[str]:
    """The hosts the distributed DAG's partitions ran on, from its summarize task's log lines."""
    return sorted(set(PARTITION_HOST.findall(" ".join(log["message"] for log in run["logs"]))))


def died(run: dict) -> bool:
    """True when the run's flow-run process died and an agent finished the run (DEAD_RUN_CAUSES)."""
    return any(cause in log["message"] for log in run["logs"] for cause in DEAD_RUN_CAUSES)


def executions(run: dict) -> int:
    """How many flow-run processes ran the run to its end (prefect's flow runner logs one final line each)."""
    return sum(1 for log in run["logs"] if log["message"].startswith(("Flow run SUCCESS", "Flow run FAILED")))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    subprocess.run([str(REPO_ROOT / "scripts" / "swarm-node-image.sh")], check=True, timeout=900)
    cluster = Cluster(tmp_path_factory.mktemp("swarm"))
    try:
        started = time.monotonic()
        cluster.start()
        cluster.swarm_sh("init", "--advertise-addr", cluster.ip(NODE1), DOCKER_CONTEXT=NODE1)
        cluster.join_all()
        print(f"\ncluster of 3 managers up in {time.monotonic() - started:.1f}s")
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> SwarmApi:
    """The stack deployed: labels given, the image loaded on every node, the agents registered."""
    cluster.swarm_sh("label", NODE1, "api", "dask")
    cluster.swarm_sh("label", NODE3, "dask")
    cluster.swarm_sh("label", NODE2, "etl")
    # a capability that no service asks for, and a DAG service that no node can take: refused, with the fix
    bad = cluster.swarm_sh("label", NODE2, "gpu", check=False)
    assert bad.returncode != 0 and "capability 'gpu'" in bad.stderr and "Fix:" in bad.stderr, bad.stderr
    refused = cluster.swarm_sh("deploy", check=False)
    assert refused.returncode != 0 and "dag-flow-test-hello needs a node labelled 'hello'" in refused.stderr, \
        refused.stderr
    cluster.swarm_sh("label", NODE2, "hello")
    started = time.monotonic()
    cluster.swarm_sh("deploy")
    print(f"\ndeploy (image on 3 nodes, stack created) took {time.monotonic() - started:.1f}s")
    api = SwarmApi(cluster.ip(NODE1))
    wait_until(api.healthy, 240, "the emulator answering on node1's published port", poll=1)
    wait_until(lambda: EXPECTED_AGENTS <= api.agent_names(), 300, f"agents {sorted(EXPECTED_AGENTS)}", poll=1)
    wait_until(lambda: {HELLO, ETL, PRIMES} <= api.flow_names(), 120, "the three DAGs registered", poll=1)
    wait_dask_workers(cluster, 2)
    print(f"stack up (API healthy, 7 agents, 3 DAGs, 2 Dask workers) {time.monotonic() - started:.1f}s after "
          "deploy began")
    return api


# How many workers the Dask scheduler has, asked in its own container (it publishes no port).
COUNT_WORKERS = ("import distributed; c = distributed.Client('tcp://127.0.0.1:8786', timeout=20); "
                 "print(len(c.scheduler_info()['workers'])); c.close()")


def dask_workers(cluster: Cluster) -> int:
    """The workers registered with the stack's Dask scheduler (on node1); 0 while it does not answer."""
    containers = cluster.containers_of(NODE1, "swarm_dask-scheduler")
    if not containers:
        return 0
    done = cluster.on(NODE1, "exec", containers[0], "python", "-c", COUNT_WORKERS, timeout=60, check=False)
    return int(done.stdout.decode().strip() or 0) if done.returncode == 0 else 0


def wait_dask_workers(cluster: Cluster, count: int) -> None:
    """Until `count` workers are registered with the scheduler: a worker task that runs is not yet a worker the
    scheduler gives tasks to, and a distributed run started before would put every partition on the others."""
    wait_until(lambda: dask_workers(cluster) >= count, 180, f"{count} Dask workers registered", poll=1)


def trigger_in_overlay(cluster: Cluster, node: str, dag: str) -> str:
    """`python -m agents trigger DAG` in the agent-etl task's container on `node` (`docker exec`, as the README
    says: the container has the stack's settings and is on its overlay network); -> the run's id."""
    container = cluster.containers_of(node, "swarm_agent-etl")[0]
    done = cluster.on(node, "exec", container, "python", "-m", "agents", "trigger", dag, timeout=180)
    return re.search(r"created flow run (\S+)", done.stdout.decode()).group(1)


def trigger_from_host(api: SwarmApi, dag: str, tmp_path: Path) -> str:
    """`python -m agents trigger DAG` on the host, through node1's published port; -> the run's id."""
    env = prefect_env(api.url + "/graphql", tmp_path)
    done = subprocess.run([sys.executable, "-m", "agents", "trigger", dag], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return re.search(r"created flow run (\S+)", done.stdout).group(1)


def test_services_are_placed_by_node_labels(cluster: Cluster, api: SwarmApi) -> None:
    where: Dict[str, set] = {}
    for service in ("emulator", "dask-scheduler", "dask-worker", "agent-etl", "agent-dask",
                    f"dag-{HELLO}", f"dag-{ETL}", f"dag-{PRIMES}"):
        where[service] = {t["Node"] for t in cluster.tasks(f"swarm_{service}")}
    print("\nplacement:", {k: sorted(v) for k, v in where.items()})
    assert where["emulator"] == where["dask-scheduler"] == {NODE1}
    assert where["agent-etl"] == where[f"dag-{HELLO}"] == where[f"dag-{ETL}"] == {NODE2}
    assert where["dask-worker"] == where["agent-dask"] == where[f"dag-{PRIMES}"] == {NODE1, NODE3}
    # the API's port is published on node1 only: node2 answers nothing there
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{cluster.ip(NODE2)}:4200/health", timeout=3)


def test_runs_land_on_the_nodes_of_their_labels(cluster: Cluster, api: SwarmApi, tmp_path: Path) -> None:
    ids = {("overlay", dag): trigger_in_overlay(cluster, NODE2, dag) for dag in (HELLO, ETL, PRIMES)}
    ids.update({("host", dag): trigger_from_host(api, dag, tmp_path) for dag in (HELLO, ETL, PRIMES)})
    api.wait_final(list(ids.values()), 300)
    # the partitions' log lines come from the Dask workers, whose log handlers send them every few seconds
    primes = [run_id for (_, dag), run_id in ids.items() if dag == PRIMES]
    wait_until(lambda: all(partition_hosts(run) for run in api.runs(primes)), 60,
               "the distributed runs' partition log lines", poll=1)
    rows = {r["id"]: r for r in api.runs(list(ids.values()))}
    for (origin, dag), run_id in ids.items():
        run = rows[run_id]
        hosts = partition_hosts(run)
        print(f"{origin:8} {dag:22} {run['state']:8} agent {run['agent']['name']:32} partitions on {hosts}")
        assert run["state"] == "Success", run
        if dag == PRIMES:
            assert node_of(run) in (NODE1, NODE3)
            assert hosts == [NODE1, NODE3], run["logs"]
        else:
            assert node_of(run) == NODE2, run


def fault_scenario(api: SwarmApi, cluster: Cluster, name: str, dags: Sequence[str], fault, heal,
                   takes_a_node: bool = False) -> Dict[str, object]:
    """Makes a run of each of `dags` at once (the agents then hold a queue of them), applies `fault` once one
    of them runs, then `heal`; -> the scenario's figures."""
    ids = [api.create_run(dag) for dag in dags]
    wait_until(lambda: any(r["state"] == "Running" for r in api.runs(ids)), 120, "a run Running", poll=0.2)
    fault()
    healed = time.monotonic()
    heal()
    rows = api.wait_final(ids, 300)
    recovered = time.monotonic() - healed
    result = {
        "created": len(ids),
        "success": sum(r["state"] == "Success" for r in rows),
        "lost": len(ids) - sum(r["state"] in FINAL_STATES for r in rows),
        "run_twice": sum(1 for r in rows if executions(r) > 1),
        "seconds_to_recover": round(recovered, 1),
        "finished_as_dead_runs": sum(died(r) for r in rows),
    }
    print(f"\nFAULT {name} (swarm): " + ", ".join(f"{k}={v}" for k, v in result.items())
          + "; ran on " + ", ".join(sorted({f"{r['flow']['name']}@{node_of(r)}" for r in rows})))
    brief = "\n".join(f"{r['flow']['name']} {r['state']} on {node_of(r)}: "
                      + " | ".join(log["message"][:160] for log in r["logs"][-6:]) for r in rows)
    assert (result["lost"], result["run_twice"]) == (0, 0), brief
    # when a node goes (restarted, or removed from the swarm), a run whose flow-run process was on it dies with
    # it, and when that node is the API's, one whose process outlived its lease without the API stops itself
    # (README "The API is down"): each ends by Server's rules, Failed with its cause when its task has no retry
    # left; only a scenario that takes a node away may end runs so
    dead = sum(r["state"] == "Failed" and died(r) for r in rows)
    assert result["success"] + (dead if takes_a_node else 0) == result["created"], brief
    return result


def test_a_paused_node_resumes_its_runs(cluster: Cluster, api: SwarmApi) -> None:
    def pause() -> None:
        subprocess.run(["docker", "pause", NODE2], check=True)
        time.sleep(10)  # the fault itself: node2 frozen for 10 s (nothing to wait for)

    fault_scenario(api, cluster, "node2 paused 10 s mid-run", [ETL] * 6 + [HELLO] * 4, pause,
                   lambda: subprocess.run(["docker", "unpause", NODE2], check=True))


def test_a_restart_of_the_api_node(cluster: Cluster, api: SwarmApi) -> None:
    def restart() -> None:
        subprocess.run(["docker", "restart", "-t", "10", NODE1], check=True, timeout=120)

    def back() -> None:
        cluster.wait_engine(NODE1, 120)
        wait_until(api.healthy, 240, "the emulator back on node1", poll=1)
        wait_dask_workers(cluster, 2)  # the scheduler restarted with node1: the workers register again

    fault_scenario(api, cluster, "node1 (API, scheduler, a worker) restarted", [HELLO, ETL, PRIMES],
                   restart, back, takes_a_node=True)


def test_a_worker_node_removed_from_the_swarm(cluster: Cluster, api: SwarmApi) -> None:
    wait_dask_workers(cluster, 2)  # node1's worker too: the runs lose node3's mid-run

    def remove() -> None:
        cluster.manager("node", "demote", NODE3)
        cluster.on(NODE3, "swarm", "leave", "--force", timeout=120)

    def gone() -> None:
        wait_until(lambda: "Down" in cluster.manager("node", "ls", "--filter", f"name={NODE3}",
                                                     "--format", "{{.Status}}").stdout.decode(),
                   120, "node3 down in the swarm", poll=1)
        cluster.manager("node", "rm", "--force", NODE3)

    # node3 also runs agents of the distributed DAG: a run one of them took dies with the node
    fault_scenario(api, cluster, "node3 (a Dask worker) removed", [PRIMES, PRIMES], remove, gone,
                   takes_a_node=True)
