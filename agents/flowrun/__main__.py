"""`python -m agents.flowrun`: the flow-run process an agent starts (see `agents.flowrun.child`)."""
from __future__ import annotations

if __name__ == "__main__":
    # imported under its package name, so the runner class prefect looks up by name is importable
    from agents.flowrun.child import main

    main()
