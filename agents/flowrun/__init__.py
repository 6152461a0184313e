"""The flow-run process an agent starts for each run (`python -m agents.flowrun`), plain or forked.

- `child`: prefect's `execute flow-run` behind the submission's ownership check (agents.submission)
- `lease`: a run cut off from the API stops before another agent may take it over
- `forkrun`: flow-run processes forked from the agent's pre-imported fork server
- `forkpreload`: what that fork server imports once
"""
