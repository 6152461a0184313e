"""Tests proving that tests/prefect_emulator behaves like Prefect Server 1.4.1 for the real prefect client."""
from __future__ import annotations
