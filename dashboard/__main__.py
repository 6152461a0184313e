"""`python -m dashboard`: serves the dashboard; `python -m dashboard hash-password`: a password hash.

    python -m dashboard --api http://127.0.0.1:4200/graphql --port 8080   # in front of any Prefect Server 1.4.1
    python -m dashboard hash-password < password.txt                      # for DAGS_UI_PASSWORD_HASH
"""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import List, Optional

DEFAULT_PORT = 8080


def serve(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=(
        "The dashboard: Prefect UI 1.x's Server pages over the Prefect Server GraphQL API. Settings: "
        "DAGS_UI_PASSWORD / DAGS_UI_PASSWORD_HASH (login), DAGS_UI_SECRET_KEY / DAGS_UI_SECRET_FILE, "
        "DAGS_UI_TIMEZONE, PREFECT__CLOUD__API_KEY, DAGS_POKE_ADDRESSES (see dashboard/settings.py)."))
    parser.add_argument("--api", help="the GraphQL endpoint (default: prefect's config, PREFECT__SERVER__ENDPOINT)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; anything else needs DAGS_UI_PASSWORD)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)

    from dashboard import create_app
    from dashboard.settings import SettingsError, load

    try:
        settings = load(args.api)
    except SettingsError as exc:
        print(f"dashboard: error: {exc}", file=sys.stderr)
        return 2
    if args.api:
        # agents.waking compares the API of this machine's agents with prefect's config: make it this one
        import prefect

        prefect.config.cloud.api = args.api
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.login_required:
        print(f"dashboard: warning: listening on {args.host} without a password: anyone who reaches it can "
              "start and cancel runs; set DAGS_UI_PASSWORD (or publish it on 127.0.0.1 only)", file=sys.stderr)
    import logging

    from waitress import create_server

    # one line per request on stderr (waitress logs none): method, path, status, milliseconds
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("waitress").setLevel(logging.WARNING)
    server = create_server(create_app(settings), host=args.host, port=args.port, threads=8, ident="dashboard")
    print(f"DASHBOARD listening on http://{args.host}:{server.effective_port} (API {settings.api_url})",
          file=sys.stderr, flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0


def hash_password() -> int:
    """Reads a password (from the terminal, or one line of stdin) and prints its Werkzeug hash."""
    from werkzeug.security import generate_password_hash

    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("dashboard: error: empty password", file=sys.stderr)
        return 2
    print(generate_password_hash(password))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        return hash_password()
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
