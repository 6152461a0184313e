"""Command line: `python -m prefect_emulator [--host H] [--port P] [--db PATH] [--api-key KEY]
[--heartbeat-timeout SECONDS] [--lazarus-interval SECONDS] [--lazarus-stale-after SECONDS]
[--cors-origins ORIGINS] [--no-cloud-hooks] [--retain-days DAYS] [--retain-log-days DAYS]`.

Every option can also come from the environment (PREFECT_EMULATOR_HOST, _PORT, _DB, _API_KEY,
_HEARTBEAT_TIMEOUT, _LAZARUS_INTERVAL, _LAZARUS_STALE_AFTER, _CORS_ORIGINS, _CLOUD_HOOKS, _RETAIN_DAYS,
_RETAIN_LOG_DAYS), so that an API key
never has to appear on a command line.
"""
from __future__ import annotations

import math
import signal
import sqlite3
import sys
import threading
from typing import NoReturn, Optional

import click


class Seconds(click.ParamType):
    """A positive, finite number of seconds (click's FloatRange lets nan through: nan compares false)."""

    name = "seconds"

    def __init__(self, unit: str = "seconds") -> None:
        self.name = unit

    def convert(self, value: object, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of {self.name}.", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r} must be a finite number of {self.name} above 0.", param, ctx)
        return seconds


SECONDS = Seconds()
DAYS = Seconds("days")

@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", envvar="PREFECT_EMULATOR_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 inside a container). Env: PREFECT_EMULATOR_HOST.")
@click.option("--port", envvar="PREFECT_EMULATOR_PORT", type=click.IntRange(0, 65535), default=4200,
              show_default=True, help="Port to listen on. Env: PREFECT_EMULATOR_PORT.")
@click.option("--db", envvar="PREFECT_EMULATOR_DB", default=None, metavar="PATH",
              help="SQLite file that keeps state across restarts; default: memory. Env: PREFECT_EMULATOR_DB.")
@click.option("--api-key", envvar="PREFECT_EMULATOR_API_KEY", default=None, metavar="KEY",
              help="Require 'Authorization: Bearer KEY'. Prefer the env variable PREFECT_EMULATOR_API_KEY, "
                   "so the key stays off command lines.")
@click.option("--heartbeat-timeout", envvar="PREFECT_EMULATOR_HEARTBEAT_TIMEOUT",
              type=SECONDS, default=60.0, show_default=True, metavar="SECONDS",
              help="Seconds without a flow run heartbeat after which the zombie killer retries or fails its Running "
                   "task runs, and fails it if Cancelling (Server: 10 minutes). "
                   "Env: PREFECT_EMULATOR_HEARTBEAT_TIMEOUT.")
@click.option("--lazarus-interval", envvar="PREFECT_EMULATOR_LAZARUS_INTERVAL",
              type=SECONDS, default=600.0, show_default=True,
              metavar="SECONDS", help="Seconds between two rounds of Lazarus, which reschedules Submitted or Running "
                                      "runs that stopped beating (as Server's, every 10 minutes). "
                                      "Env: PREFECT_EMULATOR_LAZARUS_INTERVAL.")
@click.option("--lazarus-stale-after", envvar="PREFECT_EMULATOR_LAZARUS_STALE_AFTER",
              type=SECONDS, default=600.0, show_default=True,
              metavar="SECONDS", help="Seconds since a run's last heartbeat after which Lazarus may reschedule it "
                                      "(Server: 10 minutes). Env: PREFECT_EMULATOR_LAZARUS_STALE_AFTER.")
@click.option("--cors-origins", envvar="PREFECT_EMULATOR_CORS_ORIGINS", default=None, metavar="ORIGINS",
              help="Comma-separated origins whose pages may call the API, e.g. http://localhost:8082; * allows "
                   "any (Server's Apollo does; the emulator does not by default). Default: "
                   "http://localhost and http://127.0.0.1 on ports 8080 and 8082, where the stack publishes a UI. "
                   "Env: PREFECT_EMULATOR_CORS_ORIGINS.")
@click.option("--cloud-hooks/--no-cloud-hooks", envvar="PREFECT_EMULATOR_CLOUD_HOOKS", default=True,
              show_default=True, help="Call the cloud hooks (webhooks, Slack, Twilio, PagerDuty) on flow run state "
                                      "changes. Turn off when untrusted clients reach the API: a hook makes the "
                                      "emulator call any address it is given. Env: PREFECT_EMULATOR_CLOUD_HOOKS "
                                      "(true/false).")
@click.option("--retain-days", envvar="PREFECT_EMULATOR_RETAIN_DAYS", type=DAYS, default=None, metavar="DAYS",
              help="Remove finished flow runs, with their task runs, states and logs, this many days after they "
                   "ended (checked hourly; runs that never finished are kept). Default: keep everything, as Server "
                   "does. Env: PREFECT_EMULATOR_RETAIN_DAYS.")
@click.option("--retain-log-days", envvar="PREFECT_EMULATOR_RETAIN_LOG_DAYS", type=DAYS, default=None,
              metavar="DAYS", help="Remove log lines this many days after their timestamp, whatever their run. "
                                   "Default: keep them. Env: PREFECT_EMULATOR_RETAIN_LOG_DAYS.")
def main(host: str, port: int, db: Optional[str], api_key: Optional[str], heartbeat_timeout: float,
         lazarus_interval: float, lazarus_stale_after: float, cors_origins: Optional[str],
         cloud_hooks: bool, retain_days: Optional[float], retain_log_days: Optional[float]) -> None:
    """Offline emulator of Prefect Server 1.4.1's GraphQL API, for tests: GraphQL at POST / and
    POST /graphql, health at GET /health. Stops on SIGTERM or Ctrl-C."""
    # imported here so that --help and option errors answer without importing prefect and graphql-core
    from .dbfile import DatabaseFileError
    from .store import DatabaseInUse, Store
    from .cors import Cors, CorsError, parse_origins

    try:
        cors = Cors(parse_origins(cors_origins))
    except CorsError as exc:
        _fail(f"--cors-origins: {exc}")
    try:
        store = Store(db)
    except (DatabaseInUse, DatabaseFileError) as exc:
        _fail(f"{exc}.")
    except (sqlite3.Error, OSError) as exc:
        _fail(f"cannot open database {db!r}: {exc}. Check that its folder exists and is writable.")
    from .console import log
    from .schema import build
    from .server import Emulator, Server

    emulator = Emulator(build(), store, api_key=api_key, heartbeat_timeout=heartbeat_timeout,
                        lazarus_interval=lazarus_interval, lazarus_stale_after=lazarus_stale_after, cors=cors,
                        cloud_hooks=cloud_hooks, retain_days=retain_days, retain_log_days=retain_log_days)
    try:
        server = Server((host, port), emulator)
    except OSError as exc:
        store.close()
        _fail(f"cannot listen on {host}:{port}: {exc}. Pick a free port with --port.")

    def shutdown(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    emulator.start_background_loop()
    bound_host, bound_port = server.server_address[:2]
    log(f"EMULATOR listening on http://{bound_host}:{bound_port} (db={db or 'memory'}, "
        f"api_key={'set' if api_key else 'none'}, heartbeat_timeout={heartbeat_timeout:g}s, "
        f"lazarus_interval={lazarus_interval:g}s, lazarus_stale_after={lazarus_stale_after:g}s, "
        f"cors_origins={','.join(sorted(cors.origins))}, cloud_hooks={'on' if cloud_hooks else 'off'}, "
        f"retain_days={retain_days or 'all'}, retain_log_days={retain_log_days or 'all'})")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        emulator.stop()
        server.server_close()
        store.close()
        log("EMULATOR stopped")


def _fail(message: str) -> NoReturn:
    """Ends start-up with `error: MESSAGE` on stderr and exit code 2 (a usage problem, like a bad option)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


if __name__ == "__main__":
    main(prog_name="python -m prefect_emulator")
