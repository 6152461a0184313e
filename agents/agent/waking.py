"""Waking agents: `trigger` pokes the agents that may take the run it has just created, so that the run
starts at once instead of at their next poll.

prefect's agent serves `/api/poke`, which ends its idle sleep (the next poll happens now); nothing in prefect
calls it. Our agents always serve it (agents.agent.health): at PREFECT__CLOUD__AGENT__AGENT_ADDRESS or
`--agent-address` when set (the stack: `http://0.0.0.0:8081` inside each container, not published), else at
`http://127.0.0.1:<a free port>`, reachable from this machine only. Each agent records that address in a
runtime file, `<prefect home>/agents-running/<pid>.json` (with its labels and the API it polls), removed when
it stops on Ctrl-C, else by the next `trigger` that finds its process gone.

After creating a run, `trigger` pokes, in parallel, with a short timeout:
- the agents of those files that are alive, poll the same API and whose labels cover the run's;
- every address of DAGS_POKE_ADDRESSES (`http://HOST:PORT`, comma-separated): agents elsewhere. A HOST that
  resolves to several addresses pokes each: the stack sets `http://agents:8081`, a network alias that every
  agent container carries, which Docker's DNS resolves to all of them, replicas included.

Each poke names the run's labels (`/api/poke?labels=a,b`): our agents whose labels do not cover them answer
`{"woken": false}` and stay asleep, so a poke of the whole stack makes only the agents that may take the run
poll, and the one that will take it does not wait behind the others' polls at the API.

Best effort: a poke that fails is logged at debug level (PREFECT__LOGGING__LEVEL=DEBUG shows it) and changes
nothing else; the agents' next poll (DAGS_AGENT_MAX_POLL_INTERVAL) still finds the run. A poke only makes an
agent poll now: to whoever can reach its address it is worth one poll request, nothing more.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Collection, List, Optional
from urllib.parse import urlparse

from agents.flowrun.forkrun import process_alive
from agents.labels import covers
from agents.settings import POKE_ENV, poke_addresses_from_env

# Seconds one poke may take (a live agent answers in milliseconds), and the most `trigger` waits for all.
POKE_TIMEOUT = 0.5
POKE_WAIT = 1.0
RUNTIME_FOLDER = "agents-running"
# Where an agent with no configured address serves its API: loopback only, a free port.
LOOPBACK_ADDRESS = "http://127.0.0.1:0"


def _logger():
    from prefect.utilities.logging import get_logger

    return get_logger("agents.waking")


def runtime_dir() -> Path:
    """`<prefect home>/agents-running` (PREFECT__HOME_DIR, default ~/.prefect)."""
    import prefect

    return Path(os.path.expanduser(str(prefect.config.home_dir))) / RUNTIME_FOLDER


def api_url() -> str:
    """The API this process talks to (prefect's `cloud.api`): agents and `trigger` compare it."""
    import prefect

    return str(prefect.config.cloud.api)


def local_address(bind_host: str, port: int) -> str:
    """The address at which a process of this machine reaches a server bound to `bind_host`:`port`
    (a wildcard host, `0.0.0.0`, `::` or empty, is reached on loopback)."""
    host = "127.0.0.1" if bind_host in ("", "0.0.0.0", "::") else bind_host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def register(address: str, labels: Collection[str], name: str) -> Optional[Path]:
    """Records this agent process's API address for `trigger` (see the module doc).

    Returns:
        The runtime file, or None when it cannot be written (logged; the agent still runs, only unpoked).
    """
    path = runtime_dir() / f"{os.getpid()}.json"
    record = {"pid": os.getpid(), "address": address, "labels": sorted(labels), "api": api_url(), "name": name}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(record))
        partial.replace(path)  # readers never see half a file
    except OSError as exc:
        _logger().warning("cannot record this agent's address in %s (`trigger` will not wake it): %s",
                          path.parent, exc)
        return None
    return path


def unregister(path: Optional[Path]) -> None:
    """Removes a runtime file written by `register` (if any)."""
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def registered_addresses(run_labels: Collection[str]) -> List[str]:
    """The addresses of the live agents registered on this machine that poll this process's API and whose
    labels cover `run_labels`; the files of agents that are gone are removed on the way."""
    found = []
    api = api_url()
    for path in sorted(runtime_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pid, address = int(record["pid"]), str(record["address"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if not process_alive(pid):
            unregister(path)  # an agent killed without its clean-up
        elif record.get("api") == api and covers(record.get("labels") or [], run_labels):
            found.append(address)
    return found


def expand(address: str) -> List[str]:
    """`http://HOST:PORT` as one address per IP address HOST resolves to (a compose alias: every replica).

    Raises:
        OSError: HOST does not resolve.
    """
    parsed = urlparse(address)
    infos = socket.getaddrinfo(parsed.hostname, parsed.port, type=socket.SOCK_STREAM)
    return sorted({local_address(info[4][0], parsed.port) for info in infos})


def poke(address: str, woken: List[str], run_labels: Collection[str]) -> None:
    """GET `address`/api/poke?labels=... (prefect's own agent serves it as GET, and ignores the labels);
    appends `address` to `woken` when the agent woke (ours answer `{"woken": false}` to a run whose labels
    they do not cover, and stay asleep), logs at debug level when it did not answer."""
    import requests

    try:
        answer = requests.get(address + "/api/poke", params={"labels": ",".join(sorted(run_labels))},
                              timeout=POKE_TIMEOUT)
        answer.raise_for_status()
    except requests.RequestException as exc:
        _logger().debug("could not poke the agent at %s: %s", address, exc)
        return
    try:
        body = answer.json()
    except ValueError:
        body = None  # prefect's own agent answers with no body: it woke
    if isinstance(body, dict) and body.get("woken") is False:
        return
    woken.append(address)


def _expand_and_poke(address: str, woken: List[str], run_labels: Collection[str]) -> None:
    try:
        targets = expand(address)
    except OSError as exc:
        _logger().debug("could not resolve %s (%s): %s", address, POKE_ENV, exc)
        return
    _run_all([lambda target=target: poke(target, woken, run_labels) for target in targets], POKE_TIMEOUT + 0.2)


def _run_all(jobs: List[Callable[[], None]], wait: float) -> None:
    """Runs the jobs in daemon threads, waiting at most `wait` seconds for all (a stuck one never holds the
    process)."""
    threads = [threading.Thread(target=job, name="poke", daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + wait
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def wake_agents(run_labels: Collection[str], addresses: Optional[List[str]] = None) -> List[str]:
    """Pokes the agents that may take a run with `run_labels` (see the module doc); never raises.

    Args:
        run_labels: the run's labels
        addresses: DAGS_POKE_ADDRESSES as `Settings.poke_addresses` checked it; None reads it here (the
            dashboard): a malformed one then wakes no agent (logged at debug level)

    Returns:
        The addresses whose agent answered (a copy: a late answer may still be on its way).
    """
    woken: List[str] = []
    try:
        jobs = [lambda a=a: poke(a, woken, run_labels) for a in registered_addresses(run_labels)]
        elsewhere = poke_addresses_from_env() if addresses is None else addresses
        jobs += [lambda a=a: _expand_and_poke(a, woken, run_labels) for a in elsewhere]
        _run_all(jobs, POKE_WAIT)
    except Exception as exc:  # waking is a shortcut: the trigger has already succeeded
        _logger().debug("waking agents failed: %s", exc)
    _logger().debug("poked %d agent(s): %s", len(woken), woken)
    return list(woken)
