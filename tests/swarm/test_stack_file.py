"""swarm/stack_file.py: the stack file rendered from the resolved compose.yaml, and scripts/swarm.sh's errors.

The rendering tests read `docker compose config` of the real compose.yaml and swarm/overlay.yaml (marked
`docker`: Compose resolves the files); the DAG table is the one `python -m agents list` prints.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from swarm.stack_file import StackError, agent_labels, parse_dag_table, render
from prefect_emulator.testing import REPO_ROOT

DAG_TABLE = """\
NAME                 FILE                                        PROJECT    LABELS    SCHEDULE
-------------------  ------------------------------------------  ---------  --------  ----------
distributed-primes   distributed-primes/distributed_primes.py    My Tests   dask      -
etl-seattle-weather  etl-seattle-weather/etl_seattle_weather.py  My Tests   etl       -
flow-test-hello      flow-test-hello/test-hello.py               My Tests   hello     -
"""
DAGS = parse_dag_table(DAG_TABLE)


def resolved(tmp_path: Path, profile: str, local_env: str = "", **images: str) -> Dict:
    """`docker compose config` of a copy of compose.yaml + overlay, with an env/local.env of the test's own."""
    for name in ("compose.yaml", "env/defaults.env", "env/stack.env", "swarm/overlay.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO_ROOT / name).read_text())
    (tmp_path / "env" / "local.env").write_text(local_env)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DAGS_", "PREFECT"))}
    env.update(COMPOSE_PROFILES=profile, COMPOSE_PROJECT_NAME="st", DAGS_UID="5678", DAGS_GID="5678",
               **{"DAGS_IMAGE": "st-dags:abc", "EMULATOR_IMAGE": "st-dags:abc", "DASHBOARD_IMAGE": "st-dags:abc",
                  **images})
    done = subprocess.run(["docker", "compose", "--env-file", os.devnull, "-f", "compose.yaml", "-f",
                           "swarm/overlay.yaml", "config", "--format", "json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_the_dag_table_gives_each_dag_its_labels() -> None:
    assert DAGS == {"distributed-primes": ["dask"], "etl-seattle-weather": ["etl"], "flow-test-hello": ["hello"]}
    with pytest.raises(StackError, match="no DAG table"):
        parse_dag_table("no DAGs found\n")


def test_agents_are_placed_by_the_labels_of_what_they_run() -> None:
    assert agent_labels(["python", "-m", "agents", "start", "--label", "etl", "-l", "x"], DAGS) == ["etl", "x"]
    assert agent_labels(["python", "-m", "agents", "serve", "flow-test-hello"], DAGS) == ["hello"]
    assert agent_labels(["dask", "worker"], DAGS) is None
    with pytest.raises(StackError, match="DAG 'nope', which the image does not hold.*Fix:"):
        agent_labels(["python", "-m", "agents", "serve", "nope"], DAGS)


@pytest.mark.docker
def test_the_emulator_stack_is_what_docker_stack_deploy_accepts(tmp_path: Path) -> None:
    stack = render(resolved(tmp_path, "emulator"), DAGS)
    services = stack["services"]
    assert set(services) == {"init", "emulator", "dask-scheduler", "dask-worker", "agent-etl", "agent-dask",
                             "dag-flow-test-hello", "dag-etl-seattle-weather", "dag-distributed-primes",
                             "dashboard"}
    # the dashboard came along from compose.yaml, published on the API's node only
    assert "node.labels.api == true" in services["dashboard"]["deploy"]["placement"]["constraints"]
    for name, service in services.items():
        # what stack deploy refuses or misreads is gone; no virtual IP (no IPVS), no host folder
        assert not {"profiles", "develop", "build", "depends_on", "restart"} & set(service), name
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert all(v["type"] == "volume" for v in service.get("volumes", [])), name
    assert services["init"]["deploy"]["restart_policy"]["condition"] == "on-failure"
    assert services["emulator"]["ports"] == [{"target": 4200, "published": 4200, "protocol": "tcp", "mode": "host"}]
    assert services["emulator"]["deploy"]["placement"]["constraints"] == ["node.labels.api == true"]
    hello = services["dag-flow-test-hello"]
    assert hello["deploy"]["mode"] == "global" and hello["hostname"] == "{{.Node.Hostname}}"
    assert hello["deploy"]["placement"]["constraints"] == ["node.labels.hello == true"]
    assert {"type": "volume", "source": "output", "target": "/app/data/output"} in hello["volumes"]
    assert services["dask-worker"]["deploy"]["placement"]["constraints"] == ["node.labels.dask == true"]
    assert stack["networks"]["default"] == {"driver": "overlay", "attachable": True,
                                            "driver_opts": {"com.docker.network.driver.mtu": "1350"}}
    assert {"emulator-data", "output"} <= set(stack["volumes"])


@pytest.mark.docker
def test_secrets_leave_the_environment_and_are_exported_from_files(tmp_path: Path) -> None:
    key = "pcu_swarm_secret_value"
    config = resolved(tmp_path, "emulator", f"PREFECT__CLOUD__API_KEY={key}\nPREFECT_EMULATOR_API_KEY={key}\n")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    stack = render(config, DAGS, secrets_dir, salt="cluster-id")
    text = json.dumps({k: v for k, v in stack.items() if k != "secrets"})
    assert key not in text
    assert (secrets_dir / "PREFECT__CLOUD__API_KEY").read_text() == key
    assert oct((secrets_dir / "PREFECT__CLOUD__API_KEY").stat().st_mode & 0o777) == "0o600"
    agent = stack["services"]["agent-etl"]
    assert {"source": "PREFECT__CLOUD__API_KEY", "target": "PREFECT__CLOUD__API_KEY", "uid": "5678",
            "gid": "5678", "mode": 0o400} in agent["secrets"]
    assert agent["entrypoint"][:2] == ["sh", "-c"]
    # the secret's name changes with its value (swarm secrets cannot be updated), and does not reveal it
    name = stack["secrets"]["PREFECT__CLOUD__API_KEY"]["name"]
    assert name.startswith("st_PREFECT__CLOUD__API_KEY_") and key not in name


@pytest.mark.docker
def test_the_server_stack_embeds_no_password_and_passes_docker_stack_config(tmp_path: Path) -> None:
    stack = render(resolved(tmp_path, "server"), DAGS)
    text = json.dumps({k: v for k, v in stack.items() if k != "secrets"})
    assert "test-password" not in text and "hasura-secret-admin-secret" not in text
    hasura = stack["services"]["hasura"]
    assert hasura["environment"]["HASURA_GRAPHQL_DATABASE_URL"] == \
        "postgresql://prefect:$${POSTGRES_PASSWORD}@postgres:5432/prefect_server"
    assert stack["services"]["postgres"]["entrypoint"][-1] == "docker-entrypoint.sh"
    for name in ("postgres", "hasura", "graphql", "towel", "apollo", "ui"):
        assert stack["services"][name]["deploy"]["placement"]["constraints"] == ["node.labels.api == true"]
    file = tmp_path / "server-stack.json"
    file.write_text(json.dumps(stack))
    done = subprocess.run(["docker", "stack", "config", "-c", str(file)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.docker
def test_every_service_built_from_the_dockerfile_runs_the_one_image(tmp_path: Path) -> None:
    stack = render(resolved(tmp_path, "emulator"), DAGS)
    assert {s["image"] for s in stack["services"].values()} == {"st-dags:abc"}
    with pytest.raises(StackError, match=r"services dashboard run image st-dashboard:latest, not the stack's image "
                                         r"st-dags:abc.*Fix: render with DAGS_IMAGE, EMULATOR_IMAGE and DASHBOARD_IMAGE"):
        render(resolved(tmp_path, "emulator", DASHBOARD_IMAGE="st-dashboard:latest"), DAGS)


@pytest.mark.docker
def test_a_published_dashboard_needs_its_password(tmp_path: Path) -> None:
    config = resolved(tmp_path, "emulator")
    config["services"]["dashboard"] = {"image": "st-dags:abc", "ports": [{"target": 8080, "published": "8080"}],
                                       "environment": {"DAGS_UI_PASSWORD": ""}}
    with pytest.raises(StackError, match="DAGS_UI_PASSWORD is empty. Fix: set DAGS_UI_PASSWORD"):
        render(config, DAGS)


@pytest.mark.docker
def test_swarm_sh_without_a_swarm_names_the_fix(tmp_path: Path) -> None:
    engine_state = subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
    if engine_state == "active":
        pytest.skip("this machine's engine is in a swarm")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "DOCKER_CONTEXT"))}
    done = subprocess.run([str(REPO_ROOT / "scripts" / "swarm.sh"), "deploy"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "is not part of a swarm" in done.stderr and "Fix: scripts/swarm.sh init" in done.stderr
