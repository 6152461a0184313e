"""Parity suite: Prefect Server 1.4.1's own GraphQL tests and the Prefect UI 1.x's operations, sent over HTTP.

Runs against a fresh emulator by default, or against any Prefect Server API with PARITY_API_URL.
"""
