"""The agent process: LocalAgents that host the DAGs and start their flow runs.

- `hosting`: the agent (run limit, Submitted write, starting flow-run processes, reconnection)
- `recovery`: re-queueing runs stranded by an agent that stopped polling
- `health`: an agent's poll health and its endpoint
- `waking`: the agents' own API (poke) and the record each running agent leaves for `trigger`
"""
