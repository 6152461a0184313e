"""The sections of scripts/benchmark.py, one module per goal of issue 10 (see that script's docstring)."""
