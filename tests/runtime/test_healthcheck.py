"""The containers' healthcheck command (agents.healthcheck), run as compose runs it: `python -S -m
agents.healthcheck URL` from the repository root (the image's working directory), against real servers."""
from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from typing import Iterator, List

import pytest

from prefect_emulator.testing import REPO_ROOT, Emulator, free_port


def healthcheck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-S", "-m", "agents.healthcheck", *args], cwd=str(REPO_ROOT),
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def answering() -> Iterator[List[int]]:
    """An HTTP server on loopback answering each GET with the status last put in the list (503 first)."""
    status = [503]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    status.append(server.server_address[1])
    try:
        yield status
    finally:
        server.shutdown()
        server.server_close()


def test_a_healthy_emulator_passes(tmp_path) -> None:
    with Emulator(tmp_path) as emulator:
        result = healthcheck(emulator.url.rstrip("/") + "/health")
    assert result.returncode == 0, result.stderr


def test_an_unhealthy_answer_fails_naming_the_status(answering: List[int]) -> None:
    url = f"http://127.0.0.1:{answering[1]}/api/health"
    result = healthcheck(url)
    assert result.returncode == 1
    assert f"{url}: HTTP 503" in result.stderr
    answering[0] = 200
    assert healthcheck(url).returncode == 0


def test_no_server_fails() -> None:
    result = healthcheck(f"http://127.0.0.1:{free_port()}/health")
    assert result.returncode == 1 and "refused" in result.stderr.lower()


def test_a_server_that_does_not_speak_http_fails() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        threading.Thread(target=answer, daemon=True).start()
        result = healthcheck(f"http://127.0.0.1:{listener.getsockname()[1]}/health")
    assert result.returncode == 1 and "did not answer HTTP" in result.stderr


def test_bad_arguments_are_named() -> None:
    assert healthcheck().returncode == 2
    result = healthcheck("https://127.0.0.1:1/health")
    assert result.returncode == 1 and "not an http://HOST:PORT/PATH address" in result.stderr


def test_it_imports_only_the_standard_library() -> None:
    # what keeps a check cheap (the module doc): no site, no prefect, no requests
    code = ("import sys, agents.healthcheck; print(sorted({m.split('.')[0] for m in sys.modules} "
            "- set(sys.stdlib_module_names) - {'agents', '__main__'}))")
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=str(REPO_ROOT), capture_output=True,
                            text=True, timeout=30)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
