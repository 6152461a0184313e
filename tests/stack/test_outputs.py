"""The stack's outputs on the host belong to the user who started it: scripts/configure.sh puts that user's
uid in .env (DAGS_UID; 5678 for root), the services run as it, so a host `--local` run of the ETL DAG after
the stack writes beside the stack's outputs. Run in a copy of the checkout (its data/output, not this
one's); as root, the host run is made as DAGS_UID, the user a non-root reader would be."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import List

import pytest

from tests.checkout import copy_checkout
from prefect_emulator.testing import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ETL = "etl-seattle-weather"
SCRIPT = f"dags/{ETL}/etl_seattle_weather.py"


def as_user(uid: int, gid: int, args: List[str]) -> List[str]:
    """`args` run as uid:gid: through setpriv when this is root, as they are otherwise (then uid is ours)."""
    if os.getuid() == 0:
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *args]
    return args


def test_a_host_local_run_after_the_stack_writes_beside_the_stacks_outputs(built_image):
    project = f"dagsout{uuid.uuid4().hex[:8]}"
    root = Path(tempfile.mkdtemp(prefix="dagsoutputs-")) / project
    root.mkdir(parents=True)
    root.parent.chmod(0o755)
    copy_checkout(root, wheels=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT", "COMPOSE_", "DAGS_"))}
    env.update(DAGS_IMAGE=built_image, EMULATOR_IMAGE=built_image, APOLLO_HOST_PORT=str(free_port()),
               PYTHON_VERSION="3.11", DAGS_HEALTH_INTERVAL="2s")

    def compose(*args: str, timeout: float = 600) -> str:
        proc = subprocess.run(["docker", "compose", *args], cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"docker compose {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    try:
        configured = subprocess.run(["bash", "scripts/configure.sh", "emulator"], cwd=root, env=env,
                                    capture_output=True, text=True, timeout=60)
        assert configured.returncode == 0, configured.stderr
        dotenv = (root / ".env").read_text()
        uid = int(re.search(r"^DAGS_UID=(\d+)$", dotenv, re.M).group(1))
        gid = int(re.search(r"^DAGS_GID=(\d+)$", dotenv, re.M).group(1))
        assert uid == (os.getuid() or 5678), "configure.sh must give the services the user's uid"
        compose("up", "-d", "--wait", "--no-build", f"dag-{ETL}")
        out = compose("exec", "-T", f"dag-{ETL}", "python", "-m", "agents", "trigger", ETL, "--wait",
                      "--timeout", "300")
        assert "finished: Success" in out, out
        outputs = root / "data" / "output" / ETL
        assert {p.stat().st_uid for p in [outputs, *outputs.iterdir()]} == {uid}, "the stack's outputs are not DAGS_UID's"

        home = root.parent / "home"
        home.mkdir()
        if os.getuid() == 0:
            os.chown(home, uid, gid)
        host_env = {k: v for k, v in env.items() if not k.startswith(("APOLLO", "PYTHON_VERSION"))}
        # the copy's runtime, not the one this venv's editable install points at: the DAG's outputs go to the
        # data/ of the repository whose runtime runs it (agents.config.REPO_ROOT, agents.dagkit.datafiles)
        host_env.update(HOME=str(home), PYTHONPATH=str(root))
        local = subprocess.run(as_user(uid, gid, [sys.executable, SCRIPT, "--local"]), cwd=root, env=host_env,
                               capture_output=True, text=True, timeout=300)
        assert local.returncode == 0, f"host --local run after the stack:\n{local.stdout}{local.stderr}"
        assert (outputs / "report.json").stat().st_uid == uid
    finally:
        subprocess.run(["docker", "compose", "down", "-v", "--timeout", "5"], cwd=root, env=env,
                       capture_output=True, timeout=300)
        shutil.rmtree(root.parent, ignore_errors=True)
