"""README.md to the letter: its shell blocks run, in order, in a copy of the checkout, as a new user runs them
(offline: the variant for a machine without a container registry), so a README step that fails fails CI.

A shell block runs unless the line before it is `<!-- readme-test: skip: <reason> -->` (a step that needs
Docker Hub, or that runs until Ctrl+C). Each block runs in its own `bash -e` from the copy's root, in the
activated `.venv` once the README has made it. What a reader does by hand between blocks (writing the
new DAG's file and its three compose lines from "Adding a DAG") the test does from the README's own python
and yaml blocks. The only departures from the letter, all through the environment: pip installs from the
wheelhouse (PIP_NO_INDEX, PIP_FIND_LINKS: the registry-free variant of `pip install`), the API is published
on a free port (APOLLO_HOST_PORT, with PREFECT__SERVER__ENDPOINT pointing the host at it) and so is the
dashboard (UI_HOST_PORT, which the README's own check of it reads too), so that the test never meets another
stack's 4200 or 8080, and HOME is a temporary folder (prefect's `prefect backend` writes there).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional

import pytest

from tests.checkout import copy_checkout
from prefect_emulator.testing import REPO_ROOT, free_port

README = REPO_ROOT / "README.md"
README_PT = REPO_ROOT / "README.pt-BR.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<directive>[^\n]*?) -->\n)?^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```",
                   re.S | re.M)
SKIP = re.compile(r"skip: \S")
# The new DAG of "Adding a DAG": the README's python block is its file, its yaml block its service.
NEW_DAG = "my-flow"


class Block(NamedTuple):
    lang: str
    body: str
    directive: Optional[str]
    line: int


def blocks(path: Path) -> List[Block]:
    """The fenced blocks of a markdown file, with the readme-test directive before each (if any)."""
    text = path.read_text()
    return [Block(m["lang"], m["body"], m["directive"], text.count("\n", 0, m.start("body")))
            for m in BLOCK.finditer(text)]


def commands(path: Path) -> List[str]:
    """The command lines of a markdown file's shell blocks, without comments and continuations joined."""
    found = []
    for block in blocks(path):
        if block.lang != "shell":
            continue
        for line in block.body.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append(re.sub(r"\s+", " ", command))
    return found


def test_every_shell_block_runs_or_says_why_not():
    found = blocks(README)
    shell = [b for b in found if b.lang == "shell"]
    assert len(shell) >= 8, f"README.md has {len(shell)} shell blocks: did the block pattern break?"
    for block in found:
        if block.directive is not None:
            assert block.lang == "shell" and SKIP.match(block.directive), (
                f"README.md line {block.line}: a readme-test directive is `skip: <reason>` before a shell block")


def test_readme_uses_no_compose_file_flags_and_no_removed_override():
    text = README.read_text() + README_PT.read_text()
    assert "compose.emulator.yaml" not in text
    for command in commands(README) + commands(README_PT):
        assert not re.search(r"docker compose .*(^|\s)-f\s", command), f"a README command repeats -f: {command}"


def test_the_portuguese_readme_shows_only_commands_the_english_one_runs():
    english = set(commands(README))
    missing = [c for c in commands(README_PT) if c not in english]
    assert not missing, f"README.pt-BR.md has commands README.md (the tested one) does not: {missing}"


def add_new_dag(root: Path, python: str, service: str) -> None:
    """Does what "Adding a DAG" tells the reader to: the DAG's file, and its service beside the other
    dag- services of compose.yaml."""
    folder = root / "dags" / NEW_DAG
    folder.mkdir()
    (folder / "my_flow.py").write_text(python)
    lines = (root / "compose.yaml").read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if line.startswith("    command: python -m agents serve "))
    lines.insert(last + 1, "\n" + service)
    (root / "compose.yaml").write_text("".join(lines))


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Dict[str, object]]:
    """A copy of the checkout in a folder of its own name (so its own compose project and image), and the
    environment a new user's shell would have; the stack, its volumes and its image are removed after."""
    project = f"readme{uuid.uuid4().hex[:8]}"
    root = tmp_path / project
    root.mkdir()
    copy_checkout(root)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT", "COMPOSE_", "DAGS_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(root / "wheels"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               APOLLO_HOST_PORT=str(port), PREFECT__SERVER__ENDPOINT=f"http://127.0.0.1:{port}",
               UI_HOST_PORT=str(free_port()),
               HOME=str(tmp_path / "home"), DAGS_HEALTH_INTERVAL="2s")
    # a home of its own (prefect's ~/.prefect/backend.toml, pip's cache), keeping the docker CLI's plugins
    env.setdefault("DOCKER_CONFIG", os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"))
    (tmp_path / "home").mkdir()
    try:
        yield {"root": root, "env": env, "project": project}
    finally:
        subprocess.run(["docker", "compose", "down", "-v", "--remove-orphans", "--timeout", "5"], cwd=root,
                       env=env, capture_output=True, timeout=300)
        subprocess.run(["docker", "image", "rm", f"{project}-dags:latest", f"{project}-emulator:latest",
                        f"{project}-dashboard:latest"],
                       capture_output=True, timeout=120)


def run_script(root: Path, env: Dict[str, str], script: str, timeout: float) -> subprocess.CompletedProcess:
    """Runs shell lines with bash -e from `root` (in .venv once it exists)."""
    prologue = "set -eo pipefail\nif [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi\n"
    return subprocess.run(["bash", "-c", prologue + script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def project_objects(project: str, kind: str) -> List[str]:
    """The ids of the compose project's containers or volumes that Docker still has."""
    listing = ["docker", "ps", "-a"] if kind == "container" else ["docker", "volume", "ls"]
    found = subprocess.run(listing + ["-q", "--filter", f"label=com.docker.compose.project={project}"],
                           capture_output=True, text=True, timeout=60, check=True)
    return found.stdout.split()


def leaked_network(output: str, project: str) -> bool:
    """Whether `output` ends with Docker Engine 20.10's failure to remove the project's network though every
    container on it is gone (moby/moby#43286: the engine's count of the network's endpoints stays above
    zero; only a restart of dockerd frees it), and Docker indeed holds none of the project's containers."""
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return (re.fullmatch(rf"failed to remove network {project}_default: Error response from daemon: error while "
                         rf"removing network: network {project}_default id \w+ has active endpoints", last) is not None
            and not project_objects(project, "container"))


def run_block(root: Path, env: Dict[str, str], block: Block, project: str, timeout: float = 900) -> str:
    """Runs one shell block; returns its output. Where Docker Engine's network bug (`leaked_network`) stops
    the block at a `docker compose down`, the block's lines after it run on, and must end the same way, with
    every container and, after `down -v`, every volume of the project gone: the README's steps did their
    work, and the warning names the engine's bug."""
    try:
        proc = run_script(root, env, block.body, timeout)
        output = proc.stdout + proc.stderr
        lines = block.body.splitlines()
        while proc.returncode and leaked_network(output, project):
            # the failed line is the first `down` not yet run: bash -e stopped there
            failed = next(i for i, line in enumerate(lines) if line.startswith("docker compose down"))
            warnings.warn(f"README.md block at line {block.line}: `{lines[failed].split('#')[0].strip()}` met "
                          f"Docker Engine's bug moby/moby#43286 (network {project}_default keeps a count of "
                          "endpoints with no container left; restart dockerd to free it)")
            if "-v" in lines[failed].split("#")[0].split():
                assert not project_objects(project, "volume"), f"`down -v` left volumes of {project}"
            lines = lines[failed + 1:]
            proc = run_script(root, env, "\n".join(lines), timeout)
            output += proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"README.md block at line {block.line} did not finish in {timeout} s:\n{block.body}\n"
                    f"{exc.stdout or ''}{exc.stderr or ''}"[-6000:], pytrace=False)
    assert proc.returncode == 0, (f"README.md block at line {block.line} exited {proc.returncode}:\n"
                                  f"{block.body}\n--- output (end) ---\n{output[-6000:]}")
    return output


@pytest.mark.docker
@pytest.mark.slow
def test_readme_shell_blocks_run_offline_in_a_copy_of_the_checkout(checkout):
    root, env = checkout["root"], checkout["env"]
    found = blocks(README)
    python = next(b.body for b in found if b.lang == "python" and f'Flow("{NEW_DAG}"' in b.body)
    service = next(b.body for b in found if b.lang == "yaml" and f"dag-{NEW_DAG}:" in b.body)
    started = time.monotonic()
    outputs = []
    for block in found:
        if block.lang == "yaml" and block.body == service:
            add_new_dag(root, python, service)
        if block.lang != "shell":
            continue
        if block.directive is not None:
            print(f"line {block.line}: skipped ({block.directive})")
            continue
        block_started = time.monotonic()
        outputs.append(run_block(root, env, block, checkout["project"]))
        print(f"line {block.line}: {time.monotonic() - block_started:.0f} s  "
              f"{block.body.splitlines()[0]}")
    print(f"README.md's shell blocks: {time.monotonic() - started:.0f} s")
    everything = "\n".join(outputs)
    # the triggers the README shows ended in Success (their exit code said so too)
    assert len(re.findall(r"flow run \S+ finished: Success", everything)) >= 4, everything[-4000:]
    # the stack's outputs on the host are the configured uid's, and the host's --local run wrote beside them
    uid = int(re.search(r"^DAGS_UID=(\d+)$", (root / ".env").read_text(), re.M).group(1))
    outputs_dir = root / "data" / "output" / "etl-seattle-weather"
    assert (outputs_dir / "report.json").is_file()
    assert outputs_dir.stat().st_uid == uid


@pytest.mark.docker
def test_docker_engines_network_bug_is_recognised_only_by_its_own_message():
    project = f"readme{uuid.uuid4().hex[:8]}"  # a project Docker has no container of
    message = (f"failed to remove network {project}_default: Error response from daemon: error while removing "
               f"network: network {project}_default id 8a1d1f35ae8dd2cd has active endpoints")
    assert leaked_network(f" Network {project}_default  Error\n{message}\n", project)
    assert not leaked_network(message.replace(project, "other"), project)  # another project's network
    assert not leaked_network(message + "\nError: a later failure", project)  # not the block's last word
    assert not leaked_network(f"{message}\n".replace("has active endpoints", "not found"), project)
    assert not leaked_network("", project)
