"""`--param KEY=VALUE` options: parsing, and checking them against a flow's Parameters."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable


class ParamError(ValueError):
    """A malformed or unknown parameter; the message shows the expected form or the known names."""


def parse_params(items: Iterable[str]) -> Dict[str, Any]:
    """Parses `KEY=VALUE` strings; a VALUE that is valid JSON (`3`, `true`, `[1, 2]`) is decoded.

    Args:
        items: the raw option values

    Returns:
        The parameters by name.

    Raises:
        ParamError: an item without `=`, or with an empty KEY.
    """
    params: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"malformed --param {item!r}: write it as KEY=VALUE, e.g. --param name=world "
                             "or --param count=3 (VALUE is read as JSON when it is valid JSON)")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw  # a plain string: `--param name=world` needs no JSON quotes
    return params


def check_params(flow: Any, params: Dict[str, Any]) -> None:
    """Checks parameter names against the flow's Parameters, before anything runs.

    Args:
        flow: a prefect Flow
        params: the parsed parameters

    Raises:
        ParamError: an unknown name (the message lists the flow's parameters) or a missing required one.
    """
    declared = {p.name: p for p in flow.parameters()}
    known = ", ".join(sorted(declared)) or "(none)"
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParamError(f"flow {flow.name!r} has no parameter {', '.join(repr(n) for n in unknown)}: "
                         f"its parameters are {known}")
    missing = sorted(n for n, p in declared.items() if p.required and n not in params)
    if missing:
        raise ParamError(f"flow {flow.name!r} needs --param for required parameter(s) "
                         f"{', '.join(repr(n) for n in missing)}")
