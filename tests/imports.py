"""Import graphs of the project's packages, for their structure tests."""
from __future__ import annotations

from typing import Dict, List, Optional, Set


def import_loop(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """The first import loop of `graph` (module -> the modules it imports), as the trail that closes it
    (`[a, b, a]`), or None when there is none."""
    done: Set[str] = set()

    def visit(module: str, trail: List[str]) -> Optional[List[str]]:
        if module in trail:
            return trail[trail.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            loop = visit(imported, trail + [module])
            if loop:
                return loop
        done.add(module)
        return None

    for module in sorted(graph):
        loop = visit(module, [])
        if loop:
            return loop
    return None
