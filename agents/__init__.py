"""Registers and hosts the project's DAGs (Prefect 1.x flows kept in `dags/<name>/`).

The command line is `python -m agents` (see `agents.cli`); a DAG script's main block calls
`agents.script.main(flow, __file__)`. Modules:

- `cli`: the click commands; `commands`: what each command does (shared with `script`)
- `errors`: `UserError`, the one error type for mistakes the user fixes, and how the front ends print it
- `config`: env files, backend validation, re-applying prefect's configuration
- `discovery`: finding and loading DAG folders, and checking them
- `connection`: waiting for the API, the tenant and the projects
- `registration`: registering DAGs with script storage and an idempotency key
- `hosting`: LocalAgents that run the DAGs' flow runs (with a run limit, health and reconnection)
- `recovery`: re-queueing runs stranded by a silent agent; `flowrun`: the flow-run process and its
  ownership check; `health`: an agent's poll health and its endpoint
- `forkrun`: flow-run processes forked from an agent's pre-imported fork server (`forkpreload`: what that
  server imports)
- `triggering`: creating a flow run and watching it to its end
- `params`: `--param KEY=VALUE` parsing
- `script`: the main block of a DAG script
"""
from __future__ import annotations

__all__ = ["__version__"]

__version__ = "1.0.0"
