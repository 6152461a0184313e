"""The offline orchestrator: Prefect Server 1.4.1's GraphQL API and semantics (see README.md in this folder).

Run it with `python -m prefect_emulator [--host H] [--port P] [--db PATH] [--api-key KEY]
[--heartbeat-timeout SECONDS]`.
"""
from __future__ import annotations
