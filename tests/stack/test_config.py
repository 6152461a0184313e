"""`docker compose config` of the three setups (Prefect Server, Prefect Cloud, emulator), the DAG services
matching dags/, and the image's contents. No stack is started here."""
from __future__ import annotations

import json
import os
import shlex
import sys
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.processes import REPO_ROOT
from tests.stack.stack import COMPOSE_FILE, EMULATOR_OVERRIDE

pytestmark = pytest.mark.docker

SERVER_SERVICES = {"postgres", "hasura", "graphql", "towel", "apollo", "ui"}
# What prefect 1.4.1's own cli/docker-compose.yml runs (`prefect server start` tags core-<version>).
SERVER_IMAGES = {
    "postgres": "postgres:11",
    "hasura": "hasura/graphql-engine:v2.1.1",
    "graphql": "prefecthq/server:core-1.4.1",
    "towel": "prefecthq/server:core-1.4.1",
    "apollo": "prefecthq/apollo:core-1.4.1",
    "ui": "prefecthq/ui:core-1.4.1",
}
# Services of the common image that run prefect (they need the API endpoint).
PREFECT_SERVICES_PREFIXES = ("dag-", "agent-")


def compose_config(files: List[Path], project_dir: Optional[Path] = None, **env: str) -> Dict:
    """`docker compose config --format json` for these files, with extra variables; fails the test with
    compose's message when the configuration is invalid."""
    args = ["docker", "compose"]
    if project_dir is not None:
        args += ["--project-directory", str(project_dir)]
    for file in files:
        args += ["-f", str(file)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "PREFECT", "DAGS_"))}
    full_env.update(env)
    proc = subprocess.run(args + ["config", "--format", "json"], cwd=project_dir or REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"docker compose config failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def dag_folders() -> List[str]:
    """The DAG folders: dags/<name>/ holding a .py file."""
    return sorted(p.name for p in (REPO_ROOT / "dags").iterdir()
                  if p.is_dir() and any(p.glob("*.py")))


def command_of(service: Dict) -> List[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_default_setup_runs_prefect_server_as_prefect_1_4_1_does():
    config = compose_config([COMPOSE_FILE])
    services = config["services"]
    assert SERVER_SERVICES <= set(services), "plain `docker compose up` must start Prefect Server (.env profile)"
    for name, image in SERVER_IMAGES.items():
        assert services[name]["image"] == image
    # the API and the UI on 127.0.0.1 only, at the ports the UI expects
    published = {name: [(p.get("host_ip"), p.get("published"), p.get("target")) for p in s.get("ports", [])]
                 for name, s in services.items()}
    assert published["apollo"] == [("127.0.0.1", "4200", 4200)]
    assert published["ui"] == [("127.0.0.1", "8080", 8080)]
    for name, ports in published.items():
        for host_ip, _, _ in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes a port beyond 127.0.0.1"
    for name in services:
        if name.startswith(PREFECT_SERVICES_PREFIXES) or name == "init":
            assert services[name]["environment"]["PREFECT__SERVER__ENDPOINT"] == "http://apollo:4200/graphql"
    assert services["init"]["depends_on"]["apollo"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck_and_waits_for_init():
    services = compose_config([COMPOSE_FILE])["services"]
    assert services["init"]["restart"] == "no"
    assert "python -m agents init" in " ".join(command_of(services["init"]))
    for name, service in services.items():
        if name == "init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        if name.startswith(PREFECT_SERVICES_PREFIXES):
            assert service["depends_on"]["init"]["condition"] == "service_completed_successfully", name
            # agents serve prefect's health endpoint, which their healthcheck calls
            assert service["environment"]["PREFECT__CLOUD__AGENT__AGENT_ADDRESS"] == "http://0.0.0.0:8081"
            assert "8081/api/health" in " ".join(service["healthcheck"]["test"])
            assert service["environment"]["DASK_SCHEDULER_ADDRESS"] == "tcp://dask-scheduler:8786"


def test_cloud_setup_starts_no_server_container_and_reads_backend_and_key_from_env_local(tmp_path):
    # A copy of the project's compose file and env folder, so that the user's env/local.env is untouched.
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env", ignore=shutil.ignore_patterns("local.env"))
    (tmp_path / "env" / "local.env").write_text("PREFECT__BACKEND=cloud\nPREFECT__CLOUD__API_KEY=pcu_not_a_real_key\n")
    config = compose_config([tmp_path / "compose.yaml"], project_dir=tmp_path, COMPOSE_PROFILES="")
    services = config["services"]
    assert not SERVER_SERVICES & set(services), "cloud mode must not start Prefect Server"
    assert {"init", "agent-etl", "agent-dask", "dask-scheduler", "dask-worker"} <= set(services)
    for name, service in services.items():
        if name.startswith(PREFECT_SERVICES_PREFIXES) or name == "init":
            assert service["environment"]["PREFECT__BACKEND"] == "cloud", name
            assert service["environment"]["PREFECT__CLOUD__API_KEY"] == "pcu_not_a_real_key", name
    # apollo is an optional dependency of init: absent in cloud mode, and that is not an error
    assert services["init"]["depends_on"]["apollo"]["required"] is False


def test_cloud_setup_without_env_local_is_still_valid(tmp_path):
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env", ignore=shutil.ignore_patterns("local.env"))
    config = compose_config([tmp_path / "compose.yaml"], project_dir=tmp_path, COMPOSE_PROFILES="")
    assert config["services"]["init"]["environment"]["PREFECT__BACKEND"] == "server"


def test_emulator_setup_points_every_prefect_service_at_the_emulator_and_starts_no_server():
    services = compose_config([COMPOSE_FILE, EMULATOR_OVERRIDE])["services"]
    assert not SERVER_SERVICES & set(services), "the emulator override must start no Prefect Server container"
    assert "emulator" in services
    emulator = services["emulator"]
    assert command_of(emulator)[:3] == ["python", "-m", "prefect_emulator"]
    assert [(p["host_ip"], p["target"]) for p in emulator["ports"]] == [("127.0.0.1", 4200)]
    for name, service in services.items():
        if name.startswith(PREFECT_SERVICES_PREFIXES) or name == "init":
            assert service["environment"]["PREFECT__SERVER__ENDPOINT"] == "http://emulator:4200", name
        if "build" in service:
            # the offline base image is Debian bookworm's python: 3.11
            assert service["build"]["args"]["PYTHON_VERSION"] == "3.11", name
    assert services["init"]["depends_on"]["emulator"]["condition"] == "service_healthy"


@pytest.mark.parametrize("files", [[COMPOSE_FILE], [COMPOSE_FILE, EMULATOR_OVERRIDE]],
                         ids=["compose.yaml", "with-emulator"])
def test_every_dag_folder_has_a_dag_service_and_every_dag_service_a_folder(files):
    services = compose_config(files)["services"]
    dag_services = sorted(name[len("dag-"):] for name in services if name.startswith("dag-"))
    assert dag_services == dag_folders(), (
        "compose.yaml (and tests/compose.emulator.yaml) need exactly one dag-<name> service per dags/<name>/ "
        f"folder: services {dag_services}, folders {dag_folders()}")
    for name in dag_services:
        assert command_of(services[f"dag-{name}"]) == ["python", "-m", "agents", "serve", name]


def test_scalable_services_have_no_container_name_and_no_fixed_host_port():
    services = compose_config([COMPOSE_FILE, EMULATOR_OVERRIDE])["services"]
    for name, service in services.items():
        if name.startswith(PREFECT_SERVICES_PREFIXES) or name.startswith("dask-"):
            assert "container_name" not in service, name
            assert not service.get("ports"), f"{name} publishes a host port: it could not be scaled"


def test_shared_agents_have_distinct_labels_covering_the_dags():
    services = compose_config([COMPOSE_FILE])["services"]
    agent_labels = {}
    for name, service in services.items():
        if name.startswith("agent-"):
            args = command_of(service)
            agent_labels[name] = frozenset(args[i + 1] for i, a in enumerate(args) if a in ("--label", "-l"))
    assert len(agent_labels) >= 2
    assert len(set(agent_labels.values())) == len(agent_labels), f"shared agents share labels: {agent_labels}"
    assert all(agent_labels.values()), "a shared agent without labels would run only unlabelled runs"


def test_data_folder_is_mounted_and_init_hands_data_output_to_the_services_uid():
    services = compose_config([COMPOSE_FILE])["services"]
    for name, service in services.items():
        if name in SERVER_SERVICES:
            continue
        mounts = {(v["source"], v["target"]) for v in service.get("volumes", []) if v["type"] == "bind"}
        assert (str(REPO_ROOT / "data"), "/app/data") in mounts, name
        if name != "init":
            assert service["user"] == "5678:5678", name
    assert services["init"]["user"] == "0:0"
    assert "setpriv" in " ".join(command_of(services["init"]))


def test_image_runs_as_uid_5678_and_holds_no_secret_nor_test_code_nor_host_clutter(built_image):
    script = "id -u; ls -A /app; ls -A /app/env; ls -A /app/prefect_emulator"
    proc = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", built_image, "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "5678"
    for clutter in (".git", ".venv", "wheels", ".env", "local.env", "compose.yaml", "build", "tests"):
        assert clutter not in lines[1:], f"{clutter} is in the image"
    assert {"agents", "dags", "data", "scripts", "env", "prefect_emulator", "defaults.env", "server.py"} <= set(lines)
    inspect = json.loads(subprocess.run(["docker", "image", "inspect", built_image], capture_output=True,
                                        text=True, check=True, timeout=60).stdout)[0]
    env_names = [e.split("=", 1)[0] for e in inspect["Config"]["Env"]]
    assert not [n for n in env_names if any(w in n for w in ("KEY", "SECRET", "TOKEN", "PASSWORD"))], env_names
    assert inspect["Config"]["WorkingDir"] == "/app"
    assert "PYTHONPATH=/app" in inspect["Config"]["Env"]
    history = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", built_image],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    assert "API_KEY" not in history and "PREFECT_AUTH_KEY" not in history


def test_server_services_match_what_prefect_server_start_runs(tmp_path):
    """Images, commands and variables of the server profile against `prefect server config` (the compose
    file `prefect server start` would run, resolved by prefect 1.4.1 itself)."""
    import yaml

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT", "COMPOSE_"))}
    env["PREFECT__HOME_DIR"] = str(tmp_path)
    prefect_cli = Path(sys.executable).with_name("prefect")
    proc = subprocess.run([str(prefect_cli), "server", "config"], env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0 and shutil.which("docker-compose") is None:
        pytest.skip("`prefect server config` needs Compose v1's docker-compose binary, which is not installed")
    assert proc.returncode == 0, proc.stderr
    theirs = yaml.safe_load(proc.stdout)["services"]
    ours = compose_config([COMPOSE_FILE])["services"]
    assert set(theirs) == SERVER_SERVICES
    # Deliberate differences: telemetry off by default (no traffic leaves the machine unasked), and
    # prefect's DB command variable is already inlined in the graphql command.
    allowed = {"apollo": {"PREFECT_SERVER__TELEMETRY__ENABLED"}, "graphql": {"PREFECT_SERVER_DB_CMD"}}
    for name, service in theirs.items():
        command = service["command"]
        assert command_of(ours[name]) == (shlex.split(command) if isinstance(command, str) else command), name
        assert ours[name]["image"] == service["image"], name
        their_env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        our_env = {k: str(v) for k, v in (ours[name].get("environment") or {}).items()}
        skip = allowed.get(name, set())
        assert {k: v for k, v in our_env.items() if k not in skip} == \
            {k: v for k, v in their_env.items() if k not in skip}, name
    for name in ("apollo", "ui"):
        assert [p.split("/")[0] for p in theirs[name]["ports"]] == [
            f"{p['host_ip']}:{p['published']}:{p['target']}" for p in ours[name]["ports"]]
