"""Registers and hosts the project's DAGs (Prefect 1.x flows kept in `dags/<name>/`).

The command line is `python -m agents`; a DAG script's main block calls
`agents.cli.script.main(flow, __file__)`. Laid out by process:

- `agents.cli`: the command line (register, check, agent, trigger, a DAG script's main block)
- `agents.agent`: the agent daemon that hosts the DAGs and starts their flow runs
- `agents.flowrun`: the flow-run process an agent starts for each run

and what they share:

- `errors`: `UserError`, the one error type for mistakes the user fixes, and how the front ends print it
- `config`: the env files and re-applying prefect's configuration
- `settings`: every `DAGS_*` variable (and the `PREFECT__...` values) the runtime reads, parsed once
- `submission`: the exactly-once protocol between an agent and the flow-run processes it starts
- `labels`: the label pattern, a flow's labels, and Server's routing rule (`covers`)
"""
from __future__ import annotations

__all__ = ["__version__"]

__version__ = "1.0.0"
