"""Tests proving that prefect_emulator (the package) behaves like Prefect Server 1.4.1 for the real prefect client."""
from __future__ import annotations
