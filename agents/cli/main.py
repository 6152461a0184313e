"""`python -m agents`: list, check, register, serve, start, trigger and init the project's DAGs."""
from __future__ import annotations

import sys
from typing import Callable, List, Optional, Tuple

import click

from agents import errors, settings as settings_mod
from agents.cli import commands
from agents.cli.params import parse_params

LIMIT_HELP = ("Most flow runs this agent holds (Submitted or Running) at once; the rest stay Scheduled for "
              "other agents. Default: DAGS_AGENT_MAX_RUNS, else 4; 0 for no limit.")
AGENT_ADDRESS_HELP = ("Serve the agent API (/api/health, /api/poke) here, e.g. http://0.0.0.0:8081; "
                      "default: PREFECT__CLOUD__AGENT__AGENT_ADDRESS, else a free port on 127.0.0.1.")


def _run(action: Callable[[settings_mod.Settings], int]) -> None:
    """Loads the configuration, runs a command body with it and exits with its code.

    A UserError raised on the way is printed by the group (`errors.Group`) as `Error: ...`.
    """
    sys.exit(action(settings_mod.load()))


@click.group(cls=errors.Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Register and host the DAGs in dags/<name>/ with Prefect 1.x.

    Configuration comes from env/defaults.env and env/local.env (the environment wins).
    """


@cli.command("list")
def list_command() -> None:
    """Show a table of DAGs: name, file, project, labels, schedule."""
    from tabulate import tabulate

    rows = commands.list_dags(settings_mod.load())
    if not rows:
        click.echo("no DAGs found")
        return
    click.echo(tabulate([list(r.values()) for r in rows], headers=[h.upper() for h in rows[0]]))


@cli.command()
def check() -> None:
    """Load every DAG and report each problem with its file; exit 1 if any."""
    _run(lambda settings: commands.check(settings, click.echo))


@cli.command()
@click.argument("dags", nargs=-1)
def register(dags: Tuple[str, ...]) -> None:
    """Register DAGS (all by default), creating missing projects; an unchanged DAG keeps its version.

    A broken DAG is reported and the others are still registered; exit 1 if any failed.
    """
    _run(lambda settings: commands.register(settings, list(dags), click.echo))


@cli.command()
@click.argument("dag")
@click.option("--name", help="Agent name; default <dag>@<hostname>.")
@click.option("--agent-address", help=AGENT_ADDRESS_HELP)
@click.option("--limit", type=click.IntRange(min=0), default=None, help=LIMIT_HELP)
def serve(dag: str, name: Optional[str], agent_address: Optional[str], limit: Optional[int]) -> None:
    """Register DAG, then host it with a LocalAgent carrying the DAG's labels."""
    _run(lambda settings: commands.serve(settings, commands.find_dag(settings, dag), click.echo, name,
                                         agent_address, limit=limit))


@cli.command()
@click.option("--label", "-l", "labels", multiple=True, help="An agent label (repeat for more).")
@click.option("--name", help="Agent name; default <labels joined by +>@<hostname>.")
@click.option("--agent-address", help=AGENT_ADDRESS_HELP)
@click.option("--limit", type=click.IntRange(min=0), default=None, help=LIMIT_HELP)
def start(labels: Tuple[str, ...], name: Optional[str], agent_address: Optional[str], limit: Optional[int]) -> None:
    """Run a shared LocalAgent with these labels: it runs every flow run whose labels it covers."""
    _run(lambda settings: commands.start(settings, list(labels), name, agent_address, click.echo, limit=limit))


@cli.command()
@click.argument("dag")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A flow parameter (repeat for more); VALUE is read as JSON when valid, else as text.")
@click.option("--wait", is_flag=True, help="Print states and logs until the run ends; exit 0 Success, "
              "1 failed or cancelled, 2 timeout. Warns when no agent that can run it has polled lately.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="With --wait: give up after this many seconds (exit 2).")
def trigger(dag: str, params: Tuple[str, ...], wait: bool, timeout: Optional[float]) -> None:
    """Create a run of DAG's latest version in its project."""
    parsed = parse_params(params)
    _run(lambda settings: commands.trigger(settings, dag, parsed, wait, timeout, click.echo))


@cli.command()
@click.option("--wait-timeout", type=click.FloatRange(min=0), default=settings_mod.API_WAIT_TIMEOUT.default,
              show_default=True,
              help="Seconds to wait for the API (retries with backoff).")
def init(wait_timeout: float) -> None:
    """Wait for the API, create the tenant (server backend) if none and every DAG's project."""
    _run(lambda settings: commands.init(settings, wait_timeout, click.echo))


@cli.command("config")
def config_command() -> None:
    """Show the effective configuration (backend, API URL, DAGs folder; never secrets)."""
    for key, value in settings_mod.describe(settings_mod.load()).items():
        click.echo(f"{key}: {value}")


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of `python -m agents`."""
    cli.main(args=argv, prog_name="python -m agents")
