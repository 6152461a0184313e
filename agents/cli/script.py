"""The main block of a DAG script: `python <dag>.py [--local | --register] [--param KEY=VALUE ...]`.

Every DAG ends with::

    if __name__ == "__main__":
        from agents.cli.script import main
        main(flow, __file__)

With no arguments the script does what the tutorial's did: register the flow (in its project,
"My Tests" by default) and host it with a LocalAgent until interrupted.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from agents import errors, settings as settings_mod
from agents.cli import commands, discovery
from agents.cli.main import AGENT_ADDRESS_HELP
from agents.cli.params import OPTION as PARAM_OPTION
from agents.cli.params import check_params, parse_params


def _script_globals(path: Path) -> Dict[str, Any]:
    """The globals of the running DAG script (for PROJECT), found on the call stack."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            file = frame.f_globals.get("__file__")
            if file and Path(file).resolve() == path:
                return dict(frame.f_globals)
            frame = frame.f_back
    finally:
        del frame
    return {}


def run_local(flow: Any, params: Dict[str, Any], echo: Any) -> int:
    """Runs the flow here with `flow.run()`, no orchestrator; returns 0 on success, 1 on failure."""
    state = flow.run(parameters=params)
    echo(f"flow {flow.name!r} finished: {type(state).__name__}: {state.message or ''}".rstrip(": "))
    return 0 if state.is_successful() else 1


def build_command(flow: Any, path: Path, module_globals: Dict[str, Any]) -> click.Command:
    """The click command of one DAG script."""

    @click.command(cls=errors.Command, context_settings={"help_option_names": ["-h", "--help"]},
                   help=f"Run the DAG {flow.name!r} ({path.name}).\n\n"
                        "With no option: register it in its project and host it with a LocalAgent carrying "
                        "its labels, until interrupted (the tutorial's behaviour).")
    @click.option("--local", is_flag=True, help="Run the flow right here with flow.run(), no orchestrator; "
                  "exit 0 on success, 1 on failure.")
    @click.option("--register", "register_only", is_flag=True, help="Register only, do not host.")
    @click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                  help="With --local: a flow parameter (repeat for more); VALUE is JSON when valid, else text.")
    @click.option("--agent-address", help=AGENT_ADDRESS_HELP)
    def command(local: bool, register_only: bool, params: Tuple[str, ...], agent_address: Optional[str]) -> None:
        if local and register_only:
            raise click.UsageError("--local and --register exclude each other: pick one")
        if params and not local:
            raise click.UsageError("--param is for --local runs; use `python -m agents trigger DAG --param ...` "
                                   "for a registered DAG")
        # A UserError on the way is printed by the command class (`errors.Command`) as `Error: ...`.
        parsed = parse_params(params)
        settings = settings_mod.load()
        if local:
            check_params(flow, parsed, option=PARAM_OPTION)
            sys.exit(run_local(flow, parsed, click.echo))
        dag = discovery.dag_from_script(flow, path, module_globals, settings.default_project)
        if register_only:
            sys.exit(commands.register(settings, [dag.name], click.echo, dags=[dag]))
        sys.exit(commands.serve(settings, dag, click.echo, agent_address=agent_address))

    return command


def main(flow: Any, path: str, argv: Optional[List[str]] = None) -> None:
    """Parses sys.argv (or `argv`) and registers + hosts, registers, or runs the flow locally.

    Args:
        flow: the script's module-level Flow
        path: the script's `__file__`
        argv: arguments instead of sys.argv[1:]
    """
    resolved = Path(path).resolve()
    command = build_command(flow, resolved, _script_globals(resolved))
    command.main(args=argv, prog_name=f"python {resolved.name}")
