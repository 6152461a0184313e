"""Tests of the runtime: the agents package, its CLI, the DAG scripts' command line, env files."""
from __future__ import annotations
