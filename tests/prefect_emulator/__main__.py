"""Command line: `python -m tests.prefect_emulator [--host H] [--port P] [--db PATH] [--api-key KEY]
[--heartbeat-timeout SECONDS]`.

Every option can also come from the environment (PREFECT_EMULATOR_HOST, _PORT, _DB, _API_KEY,
_HEARTBEAT_TIMEOUT), so that an API key never has to appear on a command line.
"""
from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
from typing import List, Optional


def _env(name: str, default: Optional[str]) -> Optional[str]:
    return os.environ.get(f"PREFECT_EMULATOR_{name}") or default


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line (environment variables give the defaults)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.prefect_emulator",
        description="Offline emulator of Prefect Server 1.4.1's GraphQL API, for tests.",
    )
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1; env PREFECT_EMULATOR_HOST)")
    parser.add_argument("--port", type=int, default=int(_env("PORT", "4200")),
                        help="port to listen on (default 4200; env PREFECT_EMULATOR_PORT)")
    parser.add_argument("--db", default=_env("DB", None),
                        help="SQLite file that keeps state across restarts (default: memory; env PREFECT_EMULATOR_DB)")
    parser.add_argument("--api-key", default=_env("API_KEY", None),
                        help="require 'Authorization: Bearer KEY' (prefer env PREFECT_EMULATOR_API_KEY)")
    parser.add_argument("--heartbeat-timeout", type=float, default=float(_env("HEARTBEAT_TIMEOUT", "60")),
                        help="seconds without heartbeat before a Running flow run is marked Failed "
                             "(default 60; env PREFECT_EMULATOR_HEARTBEAT_TIMEOUT)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range: use 0-65535")
    if args.heartbeat_timeout <= 0:
        parser.error(f"--heartbeat-timeout {args.heartbeat_timeout:g} must be a positive number of seconds")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Starts the emulator and serves until SIGTERM or Ctrl-C. Returns the exit code."""
    args = parse_args(argv)
    # imported here so that --help and option errors answer without importing prefect and graphql-core
    from .store import DatabaseInUse, Store

    try:
        store = Store(args.db)
    except DatabaseInUse as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"error: cannot open database {args.db!r}: {exc}. Check that its folder exists and is writable.",
              file=sys.stderr)
        return 2
    from .schema import build
    from .console import log
    from .server import Emulator, Server
    emulator = Emulator(build(), store, api_key=args.api_key, heartbeat_timeout=args.heartbeat_timeout)
    try:
        server = Server((args.host, args.port), emulator)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}. Pick a free port with --port.",
              file=sys.stderr)
        return 2

    def shutdown(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    emulator.start_background_loop()
    host, port = server.server_address[:2]
    log(f"EMULATOR listening on http://{host}:{port} (db={args.db or 'memory'}, "
        f"api_key={'set' if args.api_key else 'none'}, heartbeat_timeout={args.heartbeat_timeout:g}s)")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        emulator.stop()
        server.server_close()
        store.close()
        log("EMULATOR stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
