"""A Docker Swarm cluster of Docker-in-Docker nodes on this machine, for the tests of the swarm stack.

Each node is a container of the node image (scripts/swarm-node-image.sh: Debian bookworm with Debian's
docker.io) running its own dockerd on vfs, with its own /var/lib/docker (a named volume), on one user bridge
network. Not `--privileged` (this engine refuses it: the host lacks one of its capabilities), but with the
capabilities and profiles a dockerd needs. The host reaches each node's engine through a socket in a
folder it mounts at /run/dind, under a docker context named after the node, as an operator reaches the
hosts of a real cluster (`docker context create NODE --docker host=ssh://NODE`); the contexts live in a
DOCKER_CONFIG of the test's own, so nothing of the machine's docker configuration changes.

Everything made here is named with the prefix `swarm-` and removed by `remove()`, also after a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from prefect_emulator.testing import REPO_ROOT

NODE_IMAGE = os.environ.get("SWARM_NODE_IMAGE", "dags-swarm-node:bookworm")
NETWORK = "swarm-net"
# overlay2 on the nodes' /var/lib/docker volumes (ext4 on the host): vfs, the node image's default, copies
# every layer of every image and container in full (3 nodes: about 27 GB, 30 s per image load, minutes to
# remove a node's volume); overlay2 loads the image in 12 s.
STORAGE_DRIVER = os.environ.get("SWARM_NODE_STORAGE_DRIVER", "overlay2")
# SYS_PTRACE: a healthcheck (and `docker exec`) joins the namespaces of a task's process, which runs under
# another uid than the node's dockerd; without it runc's setns fails and no task ever becomes healthy.
NODE_CAPS = ["--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "MKNOD", "--cap-add", "SYS_PTRACE",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]


def docker(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 120, check: bool = True,
           input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Runs `docker ARGS`; raises with its output when it fails and `check` is set."""
    done = subprocess.run(["docker", *args], env=env, capture_output=True, timeout=timeout, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
    return done


class Cluster:
    """Nodes swarm-node1..N, their contexts and network; `env` is what scripts/swarm.sh is run with."""

    def __init__(self, workdir: Path, count: int = 3) -> None:
        self.workdir = workdir
        self.names = [f"swarm-node{i}" for i in range(1, count + 1)]
        self.config = workdir / "docker-config"
        # The test's docker configuration: contexts of its own, the machine's CLI plugins (compose)
        self.config.mkdir(parents=True, exist_ok=True)
        plugins = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
        if plugins.is_dir() and not (self.config / "cli-plugins").exists():
            (self.config / "cli-plugins").symlink_to(plugins)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PREFECT", "DAGS_", "SWARM_", "DOCKER_HOST", "DOCKER_CONTEXT"))}
        # the stack is named `swarm` (services swarm_<service>) whatever the checkout's folder is called
        self.env.update(DOCKER_CONFIG=str(self.config), SWARM_MANAGER=self.names[0], COMPOSE_PROJECT_NAME="swarm")

    # --- nodes -----------------------------------------------------------------------------------
    def volume(self, name: str) -> str:
        return f"{name}-docker"

    def start(self) -> None:
        """Starts every node and waits until each engine answers (bounded)."""
        self.remove()
        docker("network", "create", "--driver", "bridge", NETWORK)
        for name in self.names:
            sock_dir = self.workdir / name
            sock_dir.mkdir(parents=True, exist_ok=True)
            docker("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, *NODE_CAPS,
                   "-e", f"DOCKERD_STORAGE_DRIVER={STORAGE_DRIVER}",
                   "-v", f"{self.volume(name)}:/var/lib/docker", "-v", f"{sock_dir}:/run/dind", NODE_IMAGE)
            docker("context", "create", name, "--docker", f"host=unix://{sock_dir}/docker.sock", env=self.env)
        for name in self.names:
            self.wait_engine(name, 180)  # containerd starts slowly on a busy machine

    def on(self, name: str, *args: str, timeout: float = 120, check: bool = True,
           input: Optional[bytes] = None) -> subprocess.CompletedProcess:
        """`docker ARGS` against node `name`'s engine."""
        return docker("--context", name, *args, env=self.env, timeout=timeout, check=check, input=input)

    def answers(self, name: str) -> bool:
        """True when node `name`'s engine answers `docker version` (a starting engine may hang a while)."""
        try:
            return self.on(name, "version", timeout=10, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_engine(self, name: str, timeout: float) -> float:
        """Waits until node `name`'s engine answers; returns the seconds it took."""
        started = time.monotonic()
        while not self.answers(name):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the engine of {name} did not answer within {timeout}s:\n"
                                     + docker("logs", "--tail", "30", name, check=False).stderr.decode())
            time.sleep(0.2)
        return time.monotonic() - started

    def ip(self, name: str) -> str:
        """The node's address on the cluster's bridge network (what the host reaches it at)."""
        return docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % NETWORK,
                      name).stdout.decode().strip()

    def join_all(self) -> None:
        """Joins every node but the first (where `swarm.sh init` made the swarm) as a manager."""
        token = self.on(self.names[0], "swarm", "join-token", "-q", "manager").stdout.decode().strip()
        for name in self.names[1:]:
            self.on(name, "swarm", "join", "--token", token, f"{self.ip(self.names[0])}:2377")

    def swarm_sh(self, *args: str, timeout: float = 600, check: bool = True,
                 **extra: str) -> subprocess.CompletedProcess:
        """scripts/swarm.sh ARGS with the cluster's contexts, the manager being node 1."""
        env = dict(self.env, **extra)
        done = subprocess.run([str(REPO_ROOT / "scripts" / "swarm.sh"), *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"swarm.sh {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def manager(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """`docker ARGS` on the manager, node 1."""
        return self.on(self.names[0], *args, **kwargs)

    def containers_of(self, name: str, service: str) -> List[str]:
        """The ids of the containers of the stack's `service` (e.g. swarm_agent-etl) running on node `name`."""
        return self.on(name, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"
                       ).stdout.decode().split()

    def tasks(self, service: str) -> List[Dict[str, str]]:
        """The running tasks of a service: their node and state."""
        out = self.manager("service", "ps", service, "--filter", "desired-state=running",
                           "--format", "{{json .}}").stdout.decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def remove(self) -> None:
        """Removes the nodes, their volumes, the network and the contexts (what is not there is skipped)."""
        for name in self.names:
            docker("rm", "-f", "-v", name, check=False, timeout=180)
            docker("volume", "rm", self.volume(name), check=False, timeout=300)
            docker("context", "rm", "-f", name, env=self.env, check=False)
        docker("network", "rm", NETWORK, check=False)

