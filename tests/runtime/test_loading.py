"""A bad DAG file cannot stop the others: each file loads in a child process under DAGS_LOAD_TIMEOUT, and a file
that hangs, exits, crashes the interpreter, prints to stdout or leaves a thread running is that DAG's error."""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Dict

import pytest

from agents.testing import run_cli, runtime_env
from prefect_emulator.testing import Emulator
from tests.runtime.conftest import write_plain_dag

LOAD_TIMEOUT = 3  # seconds; every command below must end in about this long, not hang
# folder -> (source of its file, what the report must say)
BAD_FILES = {
    "loops": ("while True:\n    pass\n", "did not finish within 3s (DAGS_LOAD_TIMEOUT)"),
    "blocks": ("import time\ntime.sleep(3600)\n", "did not finish within 3s (DAGS_LOAD_TIMEOUT)"),
    "thread": ("import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), name='sleeper').start()\n"
               "from prefect import Flow\nflow = Flow('thread')\n", "non-daemon thread(s) running after loading "
               "(sleeper)"),
    "exits": ("import os\nos._exit(0)\n", "ended the process with exit code 0"),
    "exits-3": ("import os\nos._exit(3)\n", "ended the process with exit code 3"),
    "sys-exit": ("import sys\nsys.exit(0)\n", "loading failed with SystemExit: 0"),
    "aborts": ("import os\nos.abort()\n", "crashed the interpreter (SIGABRT)"),
    "segfaults": ("import ctypes\nctypes.string_at(0)\n", "crashed the interpreter (SIGSEGV)"),
    "prints": ("print('hello from import')\nfrom prefect import Flow\nflow = Flow('prints')\n",
               "prints to stdout when loaded ('hello from import'"),
    "reads-stdin": ("input()\n", "loading failed with EOFError"),
}


@pytest.fixture
def bad_dags(tmp_path: Path) -> Path:
    """A DAGs folder with every kind of bad file beside two good DAGs with unique names."""
    dags = tmp_path / "dags"
    for name, (source, _) in BAD_FILES.items():
        (dags / name).mkdir(parents=True)
        (dags / name / "dag.py").write_text(source)
    suffix = uuid.uuid4().hex[:6]
    for good in ("good-a-" + suffix, "good-b-" + suffix):
        write_plain_dag(dags, good, ["loading-" + suffix])
    return dags


def good_names(dags: Path):
    return sorted(p.name for p in dags.iterdir() if p.name.startswith("good-"))


def assert_all_end(procs: list, timeout: float, what: str) -> None:
    """Fails naming `what` unless every process in `procs` has ended within `timeout` seconds."""
    import psutil

    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    assert alive == [], f"{what}: {alive}"


def kill_groups(procs: list) -> None:
    """Kills the process group of each process (a test's cleanup: nothing outlives it)."""
    import signal

    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def timed_cli(args, env):
    """Runs the CLI and prints how long it took (a figure, not an assertion: the subprocess timeout bounds it)."""
    started = time.monotonic()
    result = run_cli(args, env, timeout=60)
    print(f"`{' '.join(args)}` with {len(BAD_FILES)} bad DAG files took {time.monotonic() - started:.1f}s "
          f"(DAGS_LOAD_TIMEOUT={LOAD_TIMEOUT})")
    return result


def assert_each_bad_file_reported(output: str, dags: Path) -> None:
    for name, (_, reason) in BAD_FILES.items():
        line = next((ln for ln in output.splitlines() if ln.startswith(f"{dags / name / 'dag.py'}: ")), None)
        assert line is not None and reason in line, f"{name}: {reason!r} not reported:\n{output}"
    assert "Traceback" not in output
    assert "hello from import" not in output.replace("('hello from import'", "")  # only quoted in its report


def test_check_reports_every_bad_file_and_passes_the_good_ones(tmp_path: Path, empty_env_dir: Path,
                                                              bad_dags: Path) -> None:
    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_FOLDER=str(bad_dags),
                      DAGS_LOAD_TIMEOUT=str(LOAD_TIMEOUT))
    result = timed_cli(["check"], env)
    assert result.returncode == 1, result.stdout
    assert_each_bad_file_reported(result.stdout, bad_dags)
    assert f"2 of {len(BAD_FILES) + 2} DAGs OK" in result.stdout


def test_list_shows_the_good_dags_and_each_broken_one(tmp_path: Path, empty_env_dir: Path, bad_dags: Path) -> None:
    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_FOLDER=str(bad_dags),
                      DAGS_LOAD_TIMEOUT=str(LOAD_TIMEOUT))
    result = timed_cli(["list"], env)
    assert result.returncode == 0, result.stdout
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    for name in good_names(bad_dags):
        assert "BROKEN" not in rows[name] and "loading-" in rows[name], rows[name]
    for name in BAD_FILES:
        assert "BROKEN: " in rows[name], rows[name]


def test_register_and_init_finish_and_the_good_dags_register(module_emulator: Emulator, module_env: Dict[str, str],
                                                            bad_dags: Path) -> None:
    env = dict(module_env, DAGS_FOLDER=str(bad_dags), DAGS_LOAD_TIMEOUT=str(LOAD_TIMEOUT))
    init = timed_cli(["init", "--wait-timeout", "10"], env)
    assert init.returncode == 0, init.stdout
    assert "project 'My Tests'" in init.stdout
    assert f"{len(BAD_FILES)} DAG(s) have problems" in init.stdout
    register = timed_cli(["register"], env)
    assert register.returncode == 1, register.stdout  # a DAG failed to load: not a success
    assert_each_bad_file_reported(register.stdout, bad_dags)
    for name in good_names(bad_dags):
        assert f"registered {name} version 1 (new version)" in register.stdout, register.stdout
        answer = module_emulator.graphql("query($n: String) { flow(where: {name: {_eq: $n}}) { id } }", {"n": name})
        assert len(answer["data"]["flow"]) == 1, answer


def test_a_hanging_dag_named_alone_is_a_clear_error(module_env: Dict[str, str], bad_dags: Path) -> None:
    env = dict(module_env, DAGS_FOLDER=str(bad_dags), DAGS_LOAD_TIMEOUT=str(LOAD_TIMEOUT))
    result = timed_cli(["trigger", "loops"], env)
    assert result.returncode == 1, result.stdout
    assert f"{bad_dags / 'loops' / 'dag.py'}: loading did not finish within 3s" in result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_bad_load_timeout_is_refused_before_anything_loads(tmp_path: Path, empty_env_dir: Path, value: str) -> None:
    marker = tmp_path / "loaded"
    write_plain_dag(tmp_path / "dags", "marks", ["plain"], extra=f"\nopen({str(marker)!r}, 'w').close()\n")
    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_FOLDER=str(tmp_path / "dags"),
                      DAGS_LOAD_TIMEOUT=value)
    result = run_cli(["check"], env, timeout=60)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: DAGS_LOAD_TIMEOUT must be"), result.stdout
    assert repr(value) in lines[0]
    assert not marker.exists()


def alive_child(proc: "psutil.Process") -> bool:
    """Whether a child is still running (a child that ends while it is looked at is not)."""
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def sigint_as_from_a_terminal() -> None:
    """Run in the command's process before it starts: SIGINT's default action, as an interactive shell gives the
    commands it starts. Started as a shell script's background job (`scripts/test.sh ... &`), this suite gets
    SIGINT ignored, its commands inherit that, and Python then leaves Ctrl-C ignored, as it should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupting_a_command_leaves_no_loading_child_behind(tmp_path: Path, empty_env_dir: Path,
                                                               bad_dags: Path) -> None:
    import signal
    import subprocess
    import sys

    import psutil

    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_FOLDER=str(bad_dags),
                      DAGS_LOAD_TIMEOUT="120")
    cli = subprocess.Popen([sys.executable, "-m", "agents", "check"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=sigint_as_from_a_terminal)
    try:
        deadline = time.monotonic() + 60
        children: list = []
        while len(children) < 2:  # the looping and the blocking files' children are still at it
            assert time.monotonic() < deadline and cli.poll() is None, "no loading children seen"
            children = [c for c in psutil.Process(cli.pid).children() if alive_child(c)]
            time.sleep(0.2)
        cli.send_signal(signal.SIGINT)  # Ctrl-C
        cli.wait(timeout=30)
        assert_all_end(children, 10, "loading children outlived the interrupted command")
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()


# `python -m agents` with a real Ctrl-C at a moment no timing can hit: it sends itself SIGINT during its third fork
# of a loading child (after os.fork's own hooks, logging's among them, as when a Ctrl-C lands while the big parent
# process is being copied), or right after it reaps its first child. argv: a token naming the run's processes
# (its forks inherit the command line), the stage, then the command.
INTERRUPTING_CLI = r"""
import os, signal, sys
stage = sys.argv.pop(2)
from agents.cli.main import main  # imported first: the hooks see the command's forks and waits, not the imports

def interrupt():
    os.kill(os.getpid(), signal.SIGINT)

if stage == "during-fork":
    forks = []
    def after_fork():
        forks.append(1)
        if len(forks) == 3:  # the looping and the blocking files' children are running by then
            interrupt()
    os.register_at_fork(after_in_parent=after_fork)
elif stage == "after-reaping":
    def profile(frame, event, arg):
        if event == "c_return" and getattr(arg, "__name__", "") == "waitpid":
            sys.setprofile(None)
            interrupt()
    sys.setprofile(profile)
main(sys.argv[2:])
"""


@pytest.mark.parametrize("stage", ["during-fork", "after-reaping"])
def test_a_ctrl_c_at_any_moment_of_loading_ends_the_command_and_its_children(
        tmp_path: Path, empty_env_dir: Path, bad_dags: Path, stage: str) -> None:
    """A Ctrl-C that lands inside os.fork was once lost (raised in logging's after-fork hook, where Python
    ignores exceptions): the command then waited out DAGS_LOAD_TIMEOUT for the blocking file's child. One
    right after a child was reaped, before it was marked so, made the cleanup fail on it and leave the rest."""
    import subprocess
    import sys

    import psutil

    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_FOLDER=str(bad_dags),
                      DAGS_LOAD_TIMEOUT="120")
    token = "interrupted-" + uuid.uuid4().hex
    log = tmp_path / "output"
    with open(log, "wb") as out:  # a file, not a pipe: a child left behind would hold a pipe open
        cli = subprocess.Popen([sys.executable, "-c", INTERRUPTING_CLI, token, stage, "check"], env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=sigint_as_from_a_terminal)
    try:
        cli.wait(timeout=30)  # not the 120 s the blocking and looping files' children would hold it
    except subprocess.TimeoutExpired:
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()
    left = [p for p in psutil.process_iter(["cmdline"]) if token in (p.info["cmdline"] or [])]
    try:
        output = log.read_text(errors="replace")
        assert cli.returncode == 1 and output.rstrip().endswith("Aborted!"), f"exit {cli.returncode}:\n{output}"
        assert "Traceback" not in output and "Exception ignored" not in output, output
        assert_all_end(left, 10, "loading children outlived the interrupted command")
    finally:
        kill_groups(left)


def test_loading_children_end_by_their_deadline_when_the_command_is_killed(tmp_path: Path, empty_env_dir: Path,
                                                                           bad_dags: Path) -> None:
    """SIGKILL of the command leaves nobody to kill its loading children at DAGS_LOAD_TIMEOUT: a looping
    file's child must still end by itself (once a CI run left one spinning for 40 minutes)."""
    import subprocess
    import sys

    import psutil

    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_FOLDER=str(bad_dags),
                      DAGS_LOAD_TIMEOUT="2")
    cli = subprocess.Popen([sys.executable, "-m", "agents", "check"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    children: list = []
    try:
        deadline = time.monotonic() + 60
        while len(children) < 2:  # the looping and the blocking files' children
            assert time.monotonic() < deadline and cli.poll() is None, "no loading children seen"
            children = [c for c in psutil.Process(cli.pid).children() if alive_child(c)]
            time.sleep(0.1)
        cli.kill()  # the command alone: its children are in process groups of their own
        cli.wait(timeout=30)
        assert_all_end(children, 20, "loading children outlived their killed command by 20 s")
    finally:
        kill_groups(children)
