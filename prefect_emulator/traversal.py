"""Server's task graph traversal functions, `utility_downstream_tasks` and `utility_upstream_tasks`.

On Server these are SQL functions Hasura tracks (a recursive query over `edge`): from the start tasks, follow
edges down (or up) while the depth is below both 50 and `depth_limit` (default 50), and answer one row per
task reached with the greatest depth at which it was reached, ordered by depth then task id. The UI's
Restart dialog asks for the tasks downstream of the failed ones this way.
"""
from __future__ import annotations

import uuid
from typing import Dict, List, Optional

from .context import RequestContext
from .errors import ApiError

MAX_DEPTH = 50  # the functions' own cap


def parse_uuid_array(literal: str) -> List[str]:
    """A Postgres array literal of uuids ("{a,b}", Hasura's `_uuid`) as a list of ids.

    Raises:
        ApiError: with Postgres's words, naming the value it could not read
    """
    text = literal.strip() if isinstance(literal, str) else ""
    if not (text.startswith("{") and text.endswith("}")):
        raise ApiError(f'malformed array literal: "{literal}" (expected a Postgres array such as "{{id1,id2}}")')
    ids = []
    for item in filter(None, (part.strip().strip('"') for part in text[1:-1].split(","))):
        try:
            ids.append(str(uuid.UUID(item)))
        except ValueError:
            raise ApiError(f'invalid input syntax for type uuid: "{item}"')
    return ids


def traverse(ctx: RequestContext, start_task_ids: str, depth_limit: Optional[int], downstream: bool) -> List[dict]:
    """Rows (tenant_id, task_id, depth) of the tasks reached from the start tasks, Server's order.

    Args:
        ctx: the request context
        start_task_ids: the `_uuid` array literal
        depth_limit: deepest level to follow (None: 50)
        downstream: follow edges from upstream to downstream task (else the other way)
    """
    store = ctx.store
    limit = min(MAX_DEPTH, MAX_DEPTH if depth_limit is None else depth_limit)
    here, there = ("upstream_task_id", "downstream_task_id") if downstream else ("downstream_task_id",
                                                                                 "upstream_task_id")
    tenants: Dict[str, str] = {}
    frontier = set()
    for task_id in parse_uuid_array(start_task_ids):
        task = store.get("task", task_id)
        if task is not None:
            tenants[task_id] = task["tenant_id"]
            frontier.add((task_id, 0))
    reached = set(frontier)
    while frontier:
        step = set()
        for task_id, depth in frontier:
            if depth >= limit:
                continue
            for edge in store.find("edge", here, task_id):
                tenants.setdefault(edge[there], edge["tenant_id"])
                node = (edge[there], depth + 1)
                if node not in reached:
                    reached.add(node)
                    step.add(node)
        frontier = step
    deepest: Dict[str, int] = {}
    for task_id, depth in reached:
        deepest[task_id] = max(depth, deepest.get(task_id, 0))
    rows = [{"tenant_id": tenants[t], "task_id": t, "depth": d} for t, d in deepest.items()]
    return sorted(rows, key=lambda r: (r["depth"], r["task_id"]))
