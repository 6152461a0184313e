"""`docker compose config` of the three setups (profiles server, emulator, none for Prefect Cloud), the DAG
services matching dags/, the image's contents, and settings from env/local.env reaching the containers.
No stack is started here (the precedence test runs one container)."""
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

from prefect_emulator.testing import REPO_ROOT
from tests.stack.conftest import services_uid
from tests.stack.stack import COMPOSE_FILE

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


def compose_command(files: List[Path], command: List[str], project_dir: Optional[Path] = None,
                    **env: str) -> subprocess.CompletedProcess:
    """`docker compose <command>` for these files with only the given variables (besides the uid that
    scripts/configure.sh would write): the checkout's .env and the caller's COMPOSE_/DAGS_ variables are
    left out, so that the developer's settings change no test."""
    args = ["docker", "compose", "--env-file", os.devnull]
    if project_dir is not None:
        args += ["--project-directory", str(project_dir)]
    for file in files:
        args += ["-f", str(file)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "PREFECT", "DAGS_"))}
    full_env.update(services_uid())
    full_env.update(env)
    return subprocess.run(args + command, cwd=project_dir or REPO_ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


def compose_config(files: List[Path], project_dir: Optional[Path] = None, **env: str) -> Dict:
    """`docker compose config --format json` (see compose_command); fails the test with compose's message
    when the configuration is invalid."""
    proc = compose_command(files, ["config", "--format", "json"], project_dir, **env)
    assert proc.returncode == 0, f"docker compose config failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def dag_folders() -> List[str]:
    """The DAG folders: dags/<name>/ holding a .py file."""
    return sorted(p.name for p in (REPO_ROOT / "dags").iterdir()
                  if p.is_dir() and any(p.glob("*.py")))


def command_of(service: Dict) -> List[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else list(command)


SERVER = {"COMPOSE_PROFILES": "server"}
EMULATOR = {"COMPOSE_PROFILES": "emulator"}
EMULATOR_UI = {"COMPOSE_PROFILES": "emulator,prefect-ui"}
SERVER_ENDPOINT = "http://apollo:4200/graphql"


def prefect_services(services: Dict) -> Dict:
    """The services that run prefect (init, DAG services, shared agents)."""
    return {n: s for n, s in services.items() if n.startswith(PREFECT_SERVICES_PREFIXES) or n == "init"}


def test_server_profile_runs_prefect_server_as_prefect_1_4_1_does():
    config = compose_config([COMPOSE_FILE], **SERVER)
    services = config["services"]
    assert SERVER_SERVICES <= set(services), "the server profile must start Prefect Server"
    assert "emulator" not in services
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
    for name, service in prefect_services(services).items():
        assert service["environment"]["PREFECT__SERVER__ENDPOINT"] == SERVER_ENDPOINT, name
    assert services["init"]["depends_on"]["apollo"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck_and_waits_for_init():
    services = compose_config([COMPOSE_FILE], **SERVER)["services"]
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


def test_the_dask_services_run_without_dasks_profiler_as_the_benchmarks_cluster_does():
    """The stack serves no Dask dashboard, so nothing reads the profiler's samples (env/stack.env says why);
    scripts/benchmark.py's clusters take the same settings from that file."""
    from scripts.benchmarks.dask_scaling import stack_dask_settings

    services = compose_config([COMPOSE_FILE], **SERVER)["services"]
    assert stack_dask_settings() == {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
    for name in ("dask-scheduler", "dask-worker"):
        assert services[name]["environment"]["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] == "False", name


def test_cloud_setup_starts_no_api_container_and_reads_backend_and_key_from_env_local(tmp_path):
    # A copy of the project's compose file and env folder, so that the user's env/local.env is untouched.
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env", ignore=shutil.ignore_patterns("local.env"))
    (tmp_path / "env" / "local.env").write_text("PREFECT__BACKEND=cloud\nPREFECT__CLOUD__API_KEY=pcu_not_a_real_key\n")
    config = compose_config([tmp_path / "compose.yaml"], project_dir=tmp_path, COMPOSE_PROFILES="")
    services = config["services"]
    assert not (SERVER_SERVICES | {"emulator"}) & set(services), "cloud mode must start no API container"
    assert {"init", "agent-etl", "agent-dask", "dask-scheduler", "dask-worker"} <= set(services)
    for name, service in prefect_services(services).items():
        assert service["environment"]["PREFECT__BACKEND"] == "cloud", name
        assert service["environment"]["PREFECT__CLOUD__API_KEY"] == "pcu_not_a_real_key", name
    # the APIs are optional dependencies of init: absent in cloud mode, and that is not an error
    assert services["init"]["depends_on"]["apollo"]["required"] is False
    assert services["init"]["depends_on"]["emulator"]["required"] is False


def test_cloud_setup_without_env_local_is_still_valid(tmp_path):
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env", ignore=shutil.ignore_patterns("local.env"))
    config = compose_config([tmp_path / "compose.yaml"], project_dir=tmp_path, COMPOSE_PROFILES="")
    assert config["services"]["init"]["environment"]["PREFECT__BACKEND"] == "server"


def test_emulator_profile_is_the_api_under_the_name_apollo_and_starts_no_server():
    services = compose_config([COMPOSE_FILE], **EMULATOR)["services"]
    assert not SERVER_SERVICES & set(services), "the emulator profile must start no Prefect Server container"
    emulator = services["emulator"]
    command = command_of(emulator)
    assert command[:3] == ["python", "-m", "prefect_emulator"]
    assert [(p["host_ip"], p["target"]) for p in emulator["ports"]] == [("127.0.0.1", 4200)]
    # reached as Prefect Server's API is: no service needs another endpoint in offline mode
    assert "apollo" in emulator["networks"]["default"]["aliases"]
    for name, service in prefect_services(services).items():
        assert service["environment"]["PREFECT__SERVER__ENDPOINT"] == SERVER_ENDPOINT, name
    assert services["init"]["depends_on"]["emulator"]["condition"] == "service_healthy"
    # its database is on a named volume, which `down` keeps and `down -v` drops
    db = command[command.index("--db") + 1]
    [volume] = [v for v in emulator["volumes"] if v["type"] == "volume"]
    assert db.startswith(volume["target"] + "/"), (db, volume)
    # it runs as the image's uid (which owns the volume's folder), not as root
    assert emulator.get("user") in (None, "", "5678", "5678:5678")


def test_the_dashboard_is_the_emulator_profiles_ui_on_loopback_with_a_truthful_healthcheck():
    services = compose_config([COMPOSE_FILE], **EMULATOR)["services"]
    dashboard = services["dashboard"]
    assert command_of(dashboard)[:3] == ["python", "-m", "dashboard"]
    # the address of Prefect Server's UI in the server profile: one UI per profile
    assert [(p["host_ip"], p["target"], p["published"]) for p in dashboard["ports"]] == [("127.0.0.1", 8080, "8080")]
    assert "8080/health" in " ".join(dashboard["healthcheck"]["test"])  # 503 while the API does not answer
    assert dashboard["depends_on"]["emulator"]["condition"] == "service_healthy"
    # the API as every other service reaches it, and the agents it wakes for Quick Run
    assert dashboard["environment"]["PREFECT__SERVER__ENDPOINT"] == SERVER_ENDPOINT
    assert dashboard["environment"]["DAGS_POKE_ADDRESSES"] == "http://agents:8081"
    assert dashboard.get("user") in (None, "", "5678", "5678:5678")
    [volume] = [v for v in dashboard["volumes"] if v["type"] == "volume"]
    assert dashboard["environment"]["DAGS_UI_SECRET_FILE"].startswith(volume["target"] + "/")
    ui_port = compose_config([COMPOSE_FILE], **SERVER)["services"]["ui"]["ports"][0]
    assert (ui_port["host_ip"], ui_port["published"]) == ("127.0.0.1", "8080")
    assert "dashboard" not in compose_config([COMPOSE_FILE], **SERVER)["services"]
    moved = compose_config([COMPOSE_FILE], UI_HOST_PORT="18099", **EMULATOR)["services"]["dashboard"]["ports"]
    assert moved[0]["published"] == "18099"


def test_emulator_services_timings_default_to_a_dev_stacks_and_follow_the_variables():
    def options(**env: str) -> Dict[str, str]:
        command = command_of(compose_config([COMPOSE_FILE], **EMULATOR, **env)["services"]["emulator"])
        return {flag: command[command.index(flag) + 1]
                for flag in ("--heartbeat-timeout", "--lazarus-interval", "--lazarus-stale-after")}

    # quicker than Server's 600 s each (README "When things fail"), slower than the agents' own dead-run bound
    assert options() == {"--heartbeat-timeout": "120", "--lazarus-interval": "60", "--lazarus-stale-after": "180"}
    assert options(EMULATOR_HEARTBEAT_TIMEOUT="5", EMULATOR_LAZARUS_INTERVAL="3",
                   EMULATOR_LAZARUS_STALE_AFTER="7") == {
        "--heartbeat-timeout": "5", "--lazarus-interval": "3", "--lazarus-stale-after": "7"}


def test_prefect_ui_profile_is_the_server_profiles_ui_in_front_of_the_emulator():
    # the image cannot be pulled here: holding the service to the server profile's `ui` keeps it runnable
    services = compose_config([COMPOSE_FILE], **EMULATOR_UI)["services"]
    assert not SERVER_SERVICES & set(services) and "emulator" in services
    ui = services["prefect-ui"]
    server_ui = compose_config([COMPOSE_FILE], **SERVER)["services"]["ui"]
    for key in ("image", "command", "environment", "healthcheck", "restart"):
        assert ui.get(key) == server_ui.get(key), key
    assert ui["image"] == SERVER_IMAGES["ui"]
    assert [(p["host_ip"], p["target"], p["published"]) for p in ui["ports"]] == [("127.0.0.1", 8080, "8082")]
    assert ui["depends_on"] == {"emulator": {"condition": "service_healthy", "required": True}}
    assert "prefect-ui" not in compose_config([COMPOSE_FILE], **EMULATOR)["services"]


def test_the_emulators_cors_origins_follow_the_ui_ports():
    def origins(**env: str) -> List[str]:
        command = command_of(compose_config([COMPOSE_FILE], **EMULATOR_UI, **env)["services"]["emulator"])
        return command[command.index("--cors-origins") + 1].split(",")

    assert origins() == ["http://localhost:8082", "http://127.0.0.1:8082", "http://localhost:8080",
                         "http://127.0.0.1:8080"]
    moved = origins(PREFECT_UI_HOST_PORT="9092", UI_HOST_PORT="9090")
    assert moved == ["http://localhost:9092", "http://127.0.0.1:9092", "http://localhost:9090",
                     "http://127.0.0.1:9090"]
    ui = compose_config([COMPOSE_FILE], **EMULATOR_UI, PREFECT_UI_HOST_PORT="9092")["services"]["prefect-ui"]
    assert ui["ports"][0]["published"] == "9092"


def test_a_checkout_without_env_gets_an_error_naming_scripts_configure(tmp_path):
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env")
    proc = compose_command([tmp_path / "compose.yaml"], ["config", "--quiet"], project_dir=tmp_path,
                           DAGS_UID="", DAGS_GID="")
    assert proc.returncode != 0
    assert "DAGS_UID" in proc.stderr and "scripts/configure.sh" in proc.stderr, proc.stderr


@pytest.mark.parametrize("profile", [SERVER, EMULATOR], ids=["server", "emulator"])
def test_every_dag_folder_has_a_dag_service_and_every_dag_service_a_folder(profile):
    services = compose_config([COMPOSE_FILE], **profile)["services"]
    dag_services = sorted(name[len("dag-"):] for name in services if name.startswith("dag-"))
    assert dag_services == dag_folders(), (
        "compose.yaml needs exactly one dag-<name> service per dags/<name>/ folder: "
        f"services {dag_services}, folders {dag_folders()}")
    for name in dag_services:
        assert command_of(services[f"dag-{name}"]) == ["python", "-m", "agents", "serve", name]


def test_a_dag_service_is_one_stanza_of_at_most_three_lines_in_compose_yaml():
    lines = COMPOSE_FILE.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("  dag-") and line.endswith(":")]
    assert len(starts) == len(dag_folders())
    for start in starts:
        stanza = [lines[start]]
        for line in lines[start + 1:]:
            if not line.startswith("    "):
                break
            stanza.append(line)
        assert len(stanza) <= 3, "a DAG service is `dag-<name>:`, `<<: *dag`, `command: ...`:\n" + "\n".join(stanza)
        assert stanza[1].strip() == "<<: *dag", stanza


def test_the_images_are_named_per_compose_project():
    images = {}
    for project in ("checkout-a", "checkout-b"):
        services = compose_config([COMPOSE_FILE], COMPOSE_PROJECT_NAME=project, **EMULATOR)["services"]
        names = {s["image"] for n, s in services.items() if "build" in s and n not in ("emulator", "dashboard")}
        assert len(names) == 1, f"services built here use several images: {names}"
        images[project] = (names.pop(), services["emulator"]["image"])
        # the emulator: the same build, its own tag (a watch rebuild for a DAG must not replace the API)
        assert services["emulator"]["build"] == services["init"]["build"]
        assert services["dashboard"]["build"] == services["init"]["build"]
        images[project] += (services["dashboard"]["image"],)
    assert images == {"checkout-a": ("checkout-a-dags:latest", "checkout-a-emulator:latest", "checkout-a-dashboard:latest"),
                      "checkout-b": ("checkout-b-dags:latest", "checkout-b-emulator:latest", "checkout-b-dashboard:latest")}


def test_docker_compose_watch_rebuilds_the_services_when_dags_or_agents_change():
    services = compose_config([COMPOSE_FILE], **EMULATOR)["services"]
    for name, service in services.items():
        if "build" not in service:
            continue
        rules = {(r["action"], Path(r["path"]).relative_to(REPO_ROOT).as_posix())
                 for r in service.get("develop", {}).get("watch", [])}
        if name == "emulator":
            assert ("rebuild", "prefect_emulator") in rules, name
        elif name == "dashboard":
            assert rules == {("rebuild", "dashboard")}, name
        else:
            assert {("rebuild", "dags"), ("rebuild", "agents"), ("rebuild", "requirements.txt")} <= rules, name


def test_scalable_services_have_no_container_name_and_no_fixed_host_port():
    services = compose_config([COMPOSE_FILE], **EMULATOR)["services"]
    for name, service in services.items():
        if name.startswith(PREFECT_SERVICES_PREFIXES) or name.startswith("dask-"):
            assert "container_name" not in service, name
            assert not service.get("ports"), f"{name} publishes a host port: it could not be scaled"


def test_shared_agents_have_distinct_labels_covering_the_dags():
    services = compose_config([COMPOSE_FILE], **SERVER)["services"]
    agent_labels = {}
    for name, service in services.items():
        if name.startswith("agent-"):
            args = command_of(service)
            agent_labels[name] = frozenset(args[i + 1] for i, a in enumerate(args) if a in ("--label", "-l"))
    assert len(agent_labels) >= 2
    assert len(set(agent_labels.values())) == len(agent_labels), f"shared agents share labels: {agent_labels}"
    assert all(agent_labels.values()), "a shared agent without labels would run only unlabelled runs"


def data_mounts(service: Dict) -> set:
    return {(v["source"], v["target"]) for v in service.get("volumes", []) if v["type"] == "bind"}


def test_data_folder_is_mounted_and_init_hands_data_output_to_the_services_uid(tmp_path):
    services = compose_config([COMPOSE_FILE], DAGS_UID="1234", DAGS_GID="4321", **SERVER)["services"]
    for name, service in services.items():
        if name in SERVER_SERVICES:
            continue
        assert (str(REPO_ROOT / "data"), "/app/data") in data_mounts(service), name
        if name != "init":
            assert service["user"] == "1234:4321", name
    assert services["init"]["user"] == "0:0"
    assert services["init"]["environment"]["DAGS_UID"] == "1234"
    assert "setpriv" in " ".join(command_of(services["init"]))
    # DAGS_DATA_DIR moves the mount (tests use it to stay out of the checkout's data/output)
    moved = compose_config([COMPOSE_FILE], DAGS_DATA_DIR=str(tmp_path), **EMULATOR)["services"]
    for name, service in moved.items():
        if name not in ("emulator", "dashboard"):  # the API and the UI read no data files
            assert data_mounts(service) == {(str(tmp_path), "/app/data")}, name
    assert not data_mounts(moved["dashboard"])


def write_local_env(tmp_path: Path, text: str) -> Path:
    """A copy of compose.yaml and env/ in `tmp_path` whose env/local.env holds `text`; returns the folder."""
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env", ignore=shutil.ignore_patterns("local.env"))
    (tmp_path / "env" / "local.env").write_text(text)
    return tmp_path


LOCAL_SETTINGS = ("PREFECT__SERVER__ENDPOINT=http://elsewhere:4200/graphql\n"
                  "DAGS_AGENT_MAX_POLL_INTERVAL=3\nDASK_SCHEDULER_ADDRESS=tcp://my-dask:8786\n")


def test_settings_in_env_local_beat_the_stacks_defaults_in_every_prefect_service(tmp_path):
    folder = write_local_env(tmp_path, LOCAL_SETTINGS)
    services = compose_config([folder / "compose.yaml"], project_dir=folder, **EMULATOR)["services"]
    for name, service in prefect_services(services).items():
        env = service["environment"]
        assert env["PREFECT__SERVER__ENDPOINT"] == "http://elsewhere:4200/graphql", name
        assert env["DAGS_AGENT_MAX_POLL_INTERVAL"] == "3", name
        assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://my-dask:8786", name
    # and without env/local.env, the compose variables give the stack's defaults
    (folder / "env" / "local.env").unlink()
    services = compose_config([folder / "compose.yaml"], project_dir=folder, DAGS_AGENT_MAX_POLL_INTERVAL="7",
                              **EMULATOR)["services"]
    for name, service in prefect_services(services).items():
        assert service["environment"]["PREFECT__SERVER__ENDPOINT"] == SERVER_ENDPOINT, name
        assert service["environment"]["DAGS_AGENT_MAX_POLL_INTERVAL"] == "7", name


def test_settings_in_env_local_reach_the_process_in_a_container(tmp_path, built_image):
    folder = write_local_env(tmp_path, LOCAL_SETTINGS + "DAGS_DEFAULT_PROJECT=From Local Env\n")
    script = "python -m agents config; env | grep -E '^(DAGS_AGENT_MAX_POLL_INTERVAL|DASK_SCHEDULER_ADDRESS)='"
    proc = compose_command([folder / "compose.yaml"],
                           ["-p", f"dagsprec{os.getpid()}", "run", "--rm", "--no-deps",
                            "--entrypoint", "sh", "agent-etl", "-c", script],
                           project_dir=folder, DAGS_IMAGE=built_image, DAGS_DATA_DIR=str(tmp_path / "data"),
                           **EMULATOR)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "http://elsewhere:4200/graphql" in proc.stdout, proc.stdout
        assert "From Local Env" in proc.stdout, proc.stdout
        assert "DAGS_AGENT_MAX_POLL_INTERVAL=3" in proc.stdout.splitlines(), proc.stdout
        assert "DASK_SCHEDULER_ADDRESS=tcp://my-dask:8786" in proc.stdout.splitlines(), proc.stdout
    finally:
        compose_command([folder / "compose.yaml"], ["-p", f"dagsprec{os.getpid()}", "down", "-v"],
                        project_dir=folder, **EMULATOR)


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
    ours = compose_config([COMPOSE_FILE], **SERVER)["services"]
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
