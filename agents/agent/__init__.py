"""The agent process: LocalAgents that host the DAGs and start their flow runs.

- `hosting`: the agent (run limit, submitting runs (agents.submission), starting flow-run processes, reconnection)
- `recovery`: re-queueing runs stranded by an agent that stopped polling, and finishing Running runs whose
  agent died with them
- `deadruns`: finishing a run whose flow-run process died, by Server's zombie killer and Lazarus rules, now
- `health`: an agent's poll health and its endpoint
- `waking`: the agents' own API (poke) and the record each running agent leaves for `trigger`
"""
