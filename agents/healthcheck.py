"""The containers' healthcheck: `python -S -m agents.healthcheck http://127.0.0.1:PORT/PATH` exits 0 when the
address answers a 2xx, 1 otherwise (no answer within 5 s, a refused connection, a 503).

Docker runs a healthcheck in every container every interval (10 s by default, 2 s in the tests, 1 s in the
benchmark's cold start), each one a new Python. `python -c "import urllib.request ..."` costs about 80 ms of
CPU a check (site-packages, then urllib's imports of http, email and ssl); this module, run with `-S` (no
site) and importing only `socket`, costs about 25 ms, which on a 2-core machine running a stack of nine
containers leaves the agents and the API a quarter of a core more. It must therefore import nothing but the
standard library (the `agents` package's `__init__` imports nothing either).
"""
from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

TIMEOUT = 5.0


def status_of(url: str, timeout: float = TIMEOUT) -> int:
    """The HTTP status code `url` answers a GET with (HTTP/1.0, so the server closes the connection).

    Raises:
        OSError: no connection, or no answer within `timeout` seconds.
        ValueError: the answer is not HTTP, or the URL is not `http://HOST:PORT/PATH`.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http://HOST:PORT/PATH address: {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode("ascii"))
        line = conn.makefile("rb").readline(200).split()
    if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        raise ValueError(f"{url} did not answer HTTP")
    return int(line[1])


def main(argv: list) -> int:
    """Exit code of the healthcheck of `argv[1]`: 0 healthy (2xx), 1 not; what failed goes to stderr,
    which Docker keeps in the container's health log (`docker inspect`)."""
    if len(argv) != 2:
        print("usage: python -S -m agents.healthcheck http://HOST:PORT/PATH", file=sys.stderr)
        return 2
    try:
        status = status_of(argv[1])
    except (OSError, ValueError) as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f"{argv[1]}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
