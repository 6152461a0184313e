"""`python -m agents`: list, check, register, serve, start, trigger and init the project's DAGs."""
from __future__ import annotations

import sys
from typing import Callable, List, Optional, Tuple

import click

from agents import commands, config, discovery, hosting
from agents.params import ParamError, parse_params

LIMIT_HELP = ("Most flow runs this agent holds (Submitted or Running) at once; the rest stay Scheduled for "
              "other agents. Default: DAGS_AGENT_MAX_RUNS, else 4; 0 for no limit.")
AGENT_ADDRESS_HELP = ("Serve the agent health endpoint (/api/health) here, e.g. http://0.0.0.0:8080; "
                      "default: PREFECT__CLOUD__AGENT__AGENT_ADDRESS, else none.")


def _settings() -> config.Settings:
    """Loads the configuration; a bad value becomes a clean `Error: ...` (exit 1)."""
    try:
        return config.load()
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(action: Callable[[], int]) -> None:
    """Runs a command body: a UsageError becomes a clean `Error: ...` and exit 1, else its exit code."""
    try:
        code = action()
    except commands.UsageError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _params(values: Tuple[str, ...]) -> dict:
    """Parses --param options; a malformed one is a usage error (exit 2) showing the expected form."""
    try:
        return parse_params(values)
    except ParamError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Register and host the DAGs in dags/<name>/ with Prefect 1.x.

    Configuration comes from env/defaults.env and env/local.env (the environment wins).
    """


@cli.command("list")
def list_command() -> None:
    """Show a table of DAGs: name, file, project, labels, schedule."""
    from tabulate import tabulate

    rows = commands.list_dags(_settings())
    if not rows:
        click.echo("no DAGs found")
        return
    click.echo(tabulate([list(r.values()) for r in rows], headers=[h.upper() for h in rows[0]]))


@cli.command()
def check() -> None:
    """Load every DAG and report each problem with its file; exit 1 if any."""
    settings = _settings()
    _run(lambda: commands.check(settings, click.echo))


@cli.command()
@click.argument("dags", nargs=-1)
def register(dags: Tuple[str, ...]) -> None:
    """Register DAGS (all by default), creating missing projects; an unchanged DAG keeps its version.

    A broken DAG is reported and the others are still registered; exit 1 if any failed.
    """
    settings = _settings()
    _run(lambda: commands.register(settings, list(dags), click.echo))


@cli.command()
@click.argument("dag")
@click.option("--name", help="Agent name; default <dag>@<hostname>.")
@click.option("--agent-address", help=AGENT_ADDRESS_HELP)
@click.option("--limit", type=click.IntRange(min=0), default=None, help=LIMIT_HELP)
def serve(dag: str, name: Optional[str], agent_address: Optional[str], limit: Optional[int]) -> None:
    """Register DAG, then host it with a LocalAgent carrying the DAG's labels."""
    settings = _settings()
    _run(lambda: commands.serve(settings, commands.find_dag(settings, dag), click.echo, name, agent_address,
                                limit=limit))


@cli.command()
@click.option("--label", "-l", "labels", multiple=True, help="An agent label (repeat for more).")
@click.option("--name", help="Agent name; default <labels joined by +>@<hostname>.")
@click.option("--agent-address", help=AGENT_ADDRESS_HELP)
@click.option("--limit", type=click.IntRange(min=0), default=None, help=LIMIT_HELP)
def start(labels: Tuple[str, ...], name: Optional[str], agent_address: Optional[str], limit: Optional[int]) -> None:
    """Run a shared LocalAgent with these labels: it runs every flow run whose labels it covers."""
    for label in labels:
        problem = discovery.label_problem(label)
        if problem:
            raise click.BadParameter(problem, param_hint="--label")
    settings = _settings()

    def body() -> int:
        commands.check_agent_settings(limit)
        # Wait for the API (and the server's tenant) first: in compose the agent may start before it.
        commands.connect(settings, click.echo)
        agent_name = name or hosting.agent_name(hosting.labels_name(labels))
        return commands.host(list(labels), agent_name, agent_address, click.echo, limit=limit)

    _run(body)


@cli.command()
@click.argument("dag")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A flow parameter (repeat for more); VALUE is read as JSON when valid, else as text.")
@click.option("--wait", is_flag=True, help="Print states and logs until the run ends; exit 0 Success, "
              "1 failed or cancelled, 2 timeout.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="With --wait: give up after this many seconds (exit 2).")
def trigger(dag: str, params: Tuple[str, ...], wait: bool, timeout: Optional[float]) -> None:
    """Create a run of DAG's latest version in its project."""
    parsed = _params(params)
    settings = _settings()
    _run(lambda: commands.trigger(settings, dag, parsed, wait, timeout, click.echo))


@cli.command()
@click.option("--wait-timeout", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds to wait for the API (retries with backoff).")
def init(wait_timeout: float) -> None:
    """Wait for the API, create the tenant (server backend) if none and every DAG's project."""
    settings = _settings()
    _run(lambda: commands.init(settings, wait_timeout, click.echo))


@cli.command("config")
def config_command() -> None:
    """Show the effective configuration (backend, API URL, DAGs folder; never secrets)."""
    settings = _settings()
    for key, value in config.describe(settings).items():
        click.echo(f"{key}: {value}")


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of `python -m agents`."""
    cli.main(args=argv, prog_name="python -m agents")
