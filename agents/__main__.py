"""`python -m agents`: the command line (see `agents.cli`)."""
from __future__ import annotations

import sys

from agents.settings import check_logging_level
from agents.errors import UserError

if __name__ == "__main__":
    # before prefect is imported (agents.cli imports it): prefect dies on a bad level with a traceback
    try:
        check_logging_level()
    except UserError as exc:
        sys.exit(f"Error: {exc}")

from agents.cli.main import main  # noqa: E402

if __name__ == "__main__":
    main()
