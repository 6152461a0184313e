"""One column's comparison evaluated in Python, as Hasura (Postgres) answers it: `compare` for a comparison
expression such as `{_eq: 1, _lt: 3}`, `LikePattern` for the pattern operators. filters.py uses them over rows in
hand, and sqlquery.py's SQL functions call them for what SQL cannot say the same way (patterns, jsonb).

Pattern operators (`_like`, `_ilike`, `_similar` and their negations) never become a backtracking regular
expression: a pattern is split on `%` into fixed-length pieces that are matched left to right, each at its
leftmost place (see `LikePattern`), so a hostile pattern costs at most about len(text) x len(pattern) steps
instead of freezing the emulator. `_similar` keeps only the LIKE wildcards (`%`, `_`), not SIMILAR TO's regex
syntax.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, List

from . import timestamps
from .tables import TIME


def comparable(kind: str, value: Any) -> Any:
    """A column value as it compares: timestamps in their canonical form, anything else as it is."""
    if value is None:
        return None
    if kind == TIME:
        return timestamps.sort_key(value)
    return value


class LikePattern:
    """A SQL LIKE pattern (`%` any run of characters, `_` one character, `\\` escapes the next one), matched
    without backtracking.

    The pattern is split on `%` into pieces of fixed length. The first piece must match at the start, the last at
    the end, and each piece in between is searched for at its leftmost place after the previous one: taking the
    leftmost place never loses a match, because it leaves the most text for the pieces after it. Each piece is a
    regex of literals and `.` only (no repetition), so each search is bounded by len(text) x len(piece).

    Args:
        pattern: the LIKE pattern
        ignore_case: True for ILIKE
    """

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        pieces: List[List[str]] = [[]]
        chars = iter(pattern)
        for ch in chars:
            if ch == "%":
                pieces.append([])
            elif ch == "_":
                pieces[-1].append(".")
            else:
                if ch == "\\":
                    ch = next(chars, "\\")  # a trailing backslash stands for itself
                pieces[-1].append(re.escape(ch))
        self._lengths = [len(piece) for piece in pieces]
        self._pieces = [re.compile("".join(piece), flags) for piece in pieces]

    def matches(self, text: str) -> bool:
        """True when the whole of `text` matches the pattern."""
        first, last = self._pieces[0], self._pieces[-1]
        if len(self._pieces) == 1:  # no %: the text is exactly as long as the pattern
            return len(text) == self._lengths[0] and first.fullmatch(text) is not None
        start, end = self._lengths[0], len(text) - self._lengths[-1]
        if end < start or first.match(text, 0, start) is None or last.fullmatch(text, end) is None:
            return False
        for piece, length in zip(self._pieces[1:-1], self._lengths[1:-1]):
            if not length:
                continue  # %% is one %
            found = piece.search(text, start, end)
            if found is None:
                return False
            start = found.end()
        return True


@functools.lru_cache(maxsize=256)
def like_pattern(pattern: str, ignore_case: bool) -> LikePattern:
    return LikePattern(pattern, ignore_case)


def _contains(container: Any, item: Any) -> bool:
    """Postgres jsonb @>: objects contain sub-objects, arrays contain every element of the other array."""
    if isinstance(container, dict) and isinstance(item, dict):
        return all(k in container and _contains(container[k], v) for k, v in item.items())
    if isinstance(container, list):
        items = item if isinstance(item, list) else [item]
        return all(any(_contains(c, i) for c in container) for i in items)
    return container == item


def compare(kind: str, value: Any, cond: Dict[str, Any]) -> bool:
    """Evaluates one column's comparison expression (`{_eq: 1, _lt: 3}`) against the stored value."""
    left = comparable(kind, value)
    for op, arg in cond.items():
        if op == "_is_null":
            if arg is not None and (value is None) != bool(arg):
                return False
            continue
        if arg is None:
            continue  # null comparison arguments are ignored, as Hasura does
        if value is None:
            return False  # SQL: a comparison with NULL is not true, so _neq and _nin skip null columns too
        if op in ("_in", "_nin"):
            values = [comparable(kind, a) for a in arg]
            if (left in values) != (op == "_in"):
                return False
            continue
        if op in ("_has_key", "_has_keys_any", "_has_keys_all"):
            if not isinstance(value, dict):
                return False
            keys = [arg] if op == "_has_key" else arg
            test: Callable = all if op != "_has_keys_any" else any
            if not test(k in value for k in keys):
                return False
            continue
        if op == "_contains":
            if not _contains(value, arg):
                return False
            continue
        if op == "_contained_in":
            if not _contains(arg, value):
                return False
            continue
        right = comparable(kind, arg)
        if op == "_eq":
            ok = left == right
        elif op == "_neq":
            ok = left != right
        elif op in ("_like", "_nlike", "_ilike", "_nilike", "_similar", "_nsimilar"):
            if not isinstance(left, str):
                return False
            ok = like_pattern(right, "ilike" in op).matches(left)
            if op.startswith("_n"):
                ok = not ok
        else:
            if left is None:
                return False
            try:
                ok = {"_gt": left > right, "_gte": left >= right, "_lt": left < right,
                      "_lte": left <= right}[op]
            except TypeError:
                return False
        if not ok:
            return False
    return True
