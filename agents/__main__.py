"""`python -m agents`: the command line (see `agents.cli`)."""
from __future__ import annotations

from agents.cli import main

if __name__ == "__main__":
    main()
