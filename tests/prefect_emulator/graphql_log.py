"""The emulator's per-operation log lines: `GRAPHQL {json}` on stderr, one per GraphQL operation."""
from __future__ import annotations

import json
from typing import List

PREFIX = "GRAPHQL "
KEYS = ("operation", "fields", "ok", "error", "ms")


def parse_graphql_log(text: str) -> List[dict]:
    """Returns the decoded `GRAPHQL {...}` records found in an emulator log, in order.

    Args:
        text: the emulator's captured stderr (prefect_emulator.testing.Emulator.log())

    Returns:
        One dict per operation with the keys operation, fields, ok, error, ms.

    Raises:
        AssertionError: if a GRAPHQL line is not the documented JSON object, naming the line.
    """
    records = []
    for line in text.splitlines():
        start = line.find(PREFIX)
        if start == -1 or not line[start + len(PREFIX):].lstrip().startswith("{"):
            continue
        payload = line[start + len(PREFIX):]
        try:
            record = json.loads(payload)
        except ValueError as exc:
            raise AssertionError(f"GRAPHQL log line is not JSON ({exc}): {line!r}") from exc
        missing = [k for k in KEYS if k not in record]
        assert not missing, f"GRAPHQL log line lacks {missing}: {line!r}"
        assert isinstance(record["fields"], list) and isinstance(record["ok"], bool), line
        records.append(record)
    return records
