"""Task graph traversal: Prefect Server's tests/database/test_flow_traversal.py, over Hasura's GraphQL.

Server's tests query Hasura's `utility_downstream_tasks` / `utility_upstream_tasks` (SQL functions taking a
Postgres array literal "{id, ...}" of type _uuid and a depth_limit; rows of utility.traversal with a `task`
relation), the same fields the UI's Restart dialog asks for. Ported: all 16 cases.
The graph (Server's fixture):
    1 -> 2 -> 3 -> 4 -> 5
          \\             /
           7 -> 8 -> 9 -> 10
          /
        6                       11 (unconnected)
"""
from __future__ import annotations

from typing import Dict, List, Optional

import prefect
import pytest

from tests.parity.flows_setup import register, rows


@pytest.fixture
def task_ids(api, project_id) -> Dict[str, str]:
    """Registers Server's traversal flow; returns slug -> task id."""
    tasks = {n: prefect.Task(n, slug=n) for n in [f"t{i}" for i in range(1, 12)]}
    flow = prefect.Flow("traversal flow")
    flow.chain(*(tasks[f"t{i}"] for i in (1, 2, 3, 4, 5)))
    flow.chain(*(tasks[f"t{i}"] for i in (6, 7, 8, 9, 10)))
    flow.chain(tasks["t2"], tasks["t7"])
    flow.chain(tasks["t9"], tasks["t5"])
    flow.add_task(tasks["t11"])
    fid = register(api, project_id, flow)
    return {t["slug"]: t["id"] for t in rows(api, "task", {"flow_id": {"_eq": fid}}, "id slug")}


def traverse(api, direction: str, ids: List[str], depth_limit: Optional[int] = None,
             where: Optional[dict] = None) -> List[dict]:
    """utility_<direction>_tasks ordered by depth then slug, as Server's tests query it."""
    field = f"utility_{direction}_tasks"
    args = {"start_task_ids": "{" + ", ".join(ids) + "}"}
    if depth_limit is not None:
        args["depth_limit"] = depth_limit
    query = (f"query($args: {field}_args!, $where: utility_traversal_bool_exp) {{ {field}(args: $args, where: $where, "
             "order_by: [{depth: asc}, {task: {slug: asc}}]) { task { slug } depth } }")
    return api.data(query, {"args": args, "where": where})[field]


def chain(*pairs) -> List[dict]:
    return [{"task": {"slug": slug}, "depth": depth} for slug, depth in pairs]


class TestDownstreamTraversal:
    def test_traverse_downstream_from_t1(self, api, task_ids):
        assert traverse(api, "downstream", [task_ids["t1"]]) == chain(
            ("t1", 0), ("t2", 1), ("t3", 2), ("t7", 2), ("t4", 3), ("t8", 3), ("t9", 4), ("t10", 5), ("t5", 5))

    def test_traverse_downstream_with_limit(self, api, task_ids):
        assert traverse(api, "downstream", [task_ids["t1"]], depth_limit=2) == chain(
            ("t1", 0), ("t2", 1), ("t3", 2), ("t7", 2))

    def test_traverse_downstream_with_where_clause(self, api, task_ids):
        where = {"task": {"slug": {"_neq": "t2"}}, "depth": {"_neq": 3}}
        assert traverse(api, "downstream", [task_ids["t1"]], where=where) == chain(
            ("t1", 0), ("t3", 2), ("t7", 2), ("t9", 4), ("t10", 5), ("t5", 5))

    def test_traverse_downstream_from_t4(self, api, task_ids):
        assert traverse(api, "downstream", [task_ids["t4"]]) == chain(("t4", 0), ("t5", 1))

    def test_traverse_downstream_from_t6_and_t9_includes_t5_at_max_depth(self, api, task_ids):
        assert {"task": {"slug": "t5"}, "depth": 4} in traverse(api, "downstream", [task_ids["t6"], task_ids["t9"]])

    def test_traverse_downstream_from_t8_and_t6_includes_t7(self, api, task_ids):
        assert {"task": {"slug": "t7"}, "depth": 1} in traverse(api, "downstream", [task_ids["t6"], task_ids["t8"]])

    def test_traverse_downstream_from_t11(self, api, task_ids):
        assert traverse(api, "downstream", [task_ids["t11"]]) == chain(("t11", 0))

    def test_traverse_downstream_from_t4_and_t11(self, api, task_ids):
        result = traverse(api, "downstream", [task_ids["t4"], task_ids["t11"]])
        assert len(result) == 3
        assert all(item in result for item in chain(("t4", 0), ("t5", 1), ("t11", 0)))


class TestUpstreamTraversal:
    def test_traverse_upstream_from_t5(self, api, task_ids):
        assert traverse(api, "upstream", [task_ids["t5"]]) == chain(
            ("t5", 0), ("t4", 1), ("t9", 1), ("t3", 2), ("t8", 2), ("t7", 3), ("t2", 4), ("t6", 4), ("t1", 5))

    def test_traverse_upstream_with_limit(self, api, task_ids):
        assert traverse(api, "upstream", [task_ids["t5"]], depth_limit=2) == chain(
            ("t5", 0), ("t4", 1), ("t9", 1), ("t3", 2), ("t8", 2))

    def test_traverse_upstream_with_where_clause(self, api, task_ids):
        where = {"task": {"slug": {"_neq": "t4"}}, "depth": {"_neq": 4}}
        assert traverse(api, "upstream", [task_ids["t5"]], where=where) == chain(
            ("t5", 0), ("t9", 1), ("t3", 2), ("t8", 2), ("t7", 3), ("t1", 5))

    def test_traverse_upstream_from_t7(self, api, task_ids):
        assert traverse(api, "upstream", [task_ids["t7"]]) == chain(("t7", 0), ("t2", 1), ("t6", 1), ("t1", 2))

    def test_traverse_upstream_from_t3_and_t10_includes_t1_at_max_depth(self, api, task_ids):
        assert {"task": {"slug": "t1"}, "depth": 5} in traverse(api, "upstream", [task_ids["t3"], task_ids["t10"]])

    def test_traverse_upstream_from_t8_and_t6_includes_t7(self, api, task_ids):
        # Server asserts t7 at depth 1 (from t8) although it is also t6's downstream, not upstream
        assert {"task": {"slug": "t7"}, "depth": 1} in traverse(api, "upstream", [task_ids["t6"], task_ids["t8"]])

    def test_traverse_upstream_from_t11(self, api, task_ids):
        assert traverse(api, "upstream", [task_ids["t11"]]) == chain(("t11", 0))

    def test_traverse_upstream_from_t7_and_t11(self, api, task_ids):
        result = traverse(api, "upstream", [task_ids["t7"], task_ids["t11"]])
        assert len(result) == 5
        assert all(item in result for item in chain(("t7", 0), ("t11", 0), ("t2", 1), ("t6", 1), ("t1", 2)))


def test_an_array_literal_that_is_not_uuids_is_refused(api):
    """Postgres refuses a malformed _uuid literal; the emulator names the value."""
    message = api.error("query { utility_downstream_tasks(args: {start_task_ids: \"{nope}\"}) { depth } }")
    assert "nope" in message
