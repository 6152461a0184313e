"""The command-line process: `python -m agents` and a DAG script's main block.

- `main`: the click commands; `commands`: what each command does (shared with `script`)
- `script`: the main block of a DAG script (`agents.cli.script.main(flow, __file__)`)
- `discovery`: finding and loading DAG folders, and checking them
- `registration`: registering DAGs with script storage and an idempotency key
- `connection`: waiting for the API, the tenant and the projects
- `triggering`: creating a flow run and watching it to its end
- `params`: `--param KEY=VALUE` parsing
"""
